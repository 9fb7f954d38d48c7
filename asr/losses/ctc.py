"""CTC as a graph loss: each target's CTC alignment graph intersected with the emissions."""

from __future__ import annotations

import torch

import graphs

from ._reduce import check_reduction, reduce_losses, zero_infinite


class CTCLoss(torch.nn.Module):
    """Connectionist temporal classification, batch-first, with `torch.nn.CTCLoss` semantics.

    Called as `loss(log_probs[B, T, V], targets, input_lengths, target_lengths)` where targets
    are padded [B, U] or concatenated 1-D (as torch accepts), or a list of B token acceptors
    when a transcript has several spellings (`graphs.alternatives_graph`, e.g. every
    pronunciation of every word): the loss is then over all their CTC alignments, each through
    the CTC topology. 'mean' divides each loss by its target length, then averages;
    `zero_infinity` zeroes impossible alignments and their gradients (without it they are inf,
    with zero gradient rather than torch's NaN).
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        self.blank = blank
        self.reduction = check_reduction(reduction)
        self.zero_infinity = zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        target_lengths = torch.as_tensor(target_lengths).reshape(-1).long()
        if isinstance(targets, (list, tuple)):  # acceptors of alternative token sequences
            topology = graphs.ctc_topology(log_probs.shape[-1], self.blank, device=log_probs.device)
            alignment_graphs = graphs.compose(topology, [target.to(log_probs.device) for target in targets])
        elif targets.dim() == 1:  # concatenated targets: split them by length
            targets = list(torch.split(targets, target_lengths.tolist()))
            alignment_graphs = graphs.ctc_graph(targets, blank=self.blank, device=log_probs.device)
        else:
            alignment_graphs = graphs.ctc_graph(targets, target_lengths, blank=self.blank, device=log_probs.device)
        losses = -graphs.intersect_dense(log_probs, input_lengths, alignment_graphs)
        if self.zero_infinity:
            losses = zero_infinite(losses)
        return reduce_losses(losses, self.reduction, target_lengths.to(losses.device))
