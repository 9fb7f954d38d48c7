"""Consistency-regularized CTC (CR-CTC, Yao et al. 2024): CTC on two differently augmented
views of each utterance, plus a KL term pulling each view's frame posteriors towards the
other's (detached), so the model cannot rely on what one mask happens to leave visible."""

from __future__ import annotations

import torch

from .ctc import CTCLoss


class ConsistencyRegularizedCTC(torch.nn.Module):
    """CR-CTC over a batch holding `views` = 2 copies of every utterance, the second half being
    the same utterances as the first (the trainer duplicates training batches before
    augmentation when a loss has `views`; in eval mode batches are single and this is CTC).

    Per utterance: (CTC + scale * KL(sg(p_other) || p_self) summed over its valid frames and
    tokens) / target length, averaged over both views and the batch: icefall's weighting
    (scale 0.2) expressed per target token like `CTCLoss`'s 'mean'.
    """

    views = 2

    def __init__(self, scale: float = 0.2, blank: int = 0):
        super().__init__()
        if scale < 0:
            raise ValueError(f"the consistency scale must be >= 0, got {scale}")
        self.scale = scale
        self.ctc = CTCLoss(blank=blank, reduction="none")

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        target_lengths = torch.as_tensor(target_lengths, device=log_probs.device).reshape(-1)
        losses = self.ctc(log_probs, targets, input_lengths, target_lengths)
        if self.training:
            losses = losses + self.scale * self.consistency(log_probs, input_lengths)
        return (losses / target_lengths.to(losses.dtype).clamp(min=1)).mean()

    @staticmethod
    def consistency(log_probs: torch.Tensor, input_lengths) -> torch.Tensor:
        """Per row [2B]: KL(sg(other view) || this view) summed over valid frames and tokens."""
        batch = log_probs.shape[0]
        if batch % 2:
            raise ValueError(f"CR-CTC needs both views of every utterance: a batch of {batch} rows is odd")
        lengths = torch.as_tensor(input_lengths, device=log_probs.device).reshape(-1)
        if not torch.equal(lengths[: batch // 2], lengths[batch // 2 :]):
            raise ValueError("CR-CTC: the two halves of the batch are not the same utterances (lengths differ)")
        other = log_probs.detach().roll(batch // 2, dims=0)
        kl = torch.nn.functional.kl_div(log_probs, other, reduction="none", log_target=True).sum(-1)  # [2B, T]
        valid = torch.arange(log_probs.shape[1], device=log_probs.device) < lengths[:, None]
        return kl.masked_fill(~valid, 0.0).sum(-1)
