"""ASG (Auto Segmentation criterion, wav2letter) as a graph loss: alignment graphs without a
blank, normalized by the fully connected graph of all labellings, with learnable transitions."""

from __future__ import annotations

import torch

import graphs

from ..decoding.topology import ASGTopology
from ._reduce import check_reduction, reduce_losses


class ASGLoss(torch.nn.Module):
    """Auto Segmentation criterion over emissions [B, T, V] (any real scores, not only log-probs).

    A frame labelling's score is its summed emissions plus transitions[V, first token] and
    transitions[i, j] for every frame of token j after one of token i (i == j: the token goes
    on). The loss is -(log-sum-exp over labellings that collapse to the target - log-sum-exp
    over all labellings). `transitions` [V + 1, V] is a Parameter when `learn_transitions`,
    else all zero (the denominator is then a per-frame log-softmax). Targets must not repeat a
    token immediately, unless `repeat` names a repetition label: then a token equal to the one
    before it is written as that label (wav2letter's "L <rep>" for "LL"; `asr train --loss asg`
    uses label 0, the blank's column). 'mean' divides each loss by its target length, then
    averages, like CTCLoss. `topology` is how a model trained with this loss decodes (`silence`:
    the label whose long runs are pauses, e.g. a word separator). With `surround` each target
    is framed by the silence label (wav2letter's --surround), so the pauses before and after
    the speech are silence rather than the first and last token held on.
    """

    def __init__(self, num_tokens: int, reduction: str = "mean", learn_transitions: bool = True,
                 repeat: int | None = None, silence: int | None = None, surround: bool = False):
        super().__init__()
        if surround and silence is None:
            raise ValueError("ASGLoss: surround needs a silence label")
        self.num_tokens, self.repeat, self.silence, self.surround = num_tokens, repeat, silence, surround
        self.reduction = check_reduction(reduction)
        if learn_transitions:
            self.transitions = torch.nn.Parameter(torch.zeros(num_tokens + 1, num_tokens))
        else:
            self.register_parameter("transitions", None)

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        """Per-utterance ASG losses, reduced; targets padded [B, U] or concatenated 1-D."""
        if log_probs.shape[-1] != self.num_tokens:
            raise ValueError(f"ASGLoss: emissions have {log_probs.shape[-1]} columns, expected {self.num_tokens}")
        target_lengths = torch.as_tensor(target_lengths).reshape(-1).long()
        if targets.dim() == 1:  # concatenated targets: pad them
            targets = torch.nn.utils.rnn.pad_sequence(list(torch.split(targets, target_lengths.tolist())),
                                                      batch_first=True)
        lengths = target_lengths
        if self.surround:
            targets, lengths = self._surrounded(targets, lengths)
        if self.repeat is not None:
            targets = ASGTopology(repeat=self.repeat).frame_labels(targets, lengths)
        transitions = None if self.transitions is None else self.transitions.to(log_probs.dtype)
        alignments = graphs.asg_alignment_graph(targets, lengths, transitions, device=log_probs.device)
        everything = graphs.asg_transition_graph(self.num_tokens, transitions, device=log_probs.device)
        losses = (graphs.intersect_dense(log_probs, input_lengths, everything)
                  - graphs.intersect_dense(log_probs, input_lengths, alignments))
        return reduce_losses(losses, self.reduction, target_lengths.to(losses.device))

    def _surrounded(self, targets: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded targets with the silence label before and after each one."""
        framed = torch.full((targets.shape[0], targets.shape[1] + 2), self.silence, dtype=targets.dtype,
                            device=targets.device)
        steps = torch.arange(targets.shape[1], device=targets.device)
        inside = steps.unsqueeze(0) < lengths.to(targets.device).unsqueeze(1)
        framed[:, 1:-1] = torch.where(inside, targets, self.silence)
        return framed, lengths + 2

    @property
    def topology(self) -> ASGTopology:
        """Frames read the ASG way, scored by the current transitions."""
        transitions = None if self.transitions is None else self.transitions.detach().cpu()
        return ASGTopology(transitions, repeat=0 if self.repeat is None else self.repeat, silence=self.silence)
