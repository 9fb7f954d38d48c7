"""MMI (LF-MMI style) as a graph loss: numerator paths minus all paths of a token-bigram denominator.

The denominator D = H o P composes the CTC topology H (frames -> tokens) with a token
bigram acceptor P. The numerator of an utterance is D composed with its token sequence:
the same paths as D restricted to that transcript, with the same weights, so
loss = score(D) - score(numerator) >= 0, with 0 only when D's mass is all on the transcript.
"""

from __future__ import annotations

import numpy as np
import torch

import graphs

from ._reduce import check_reduction, reduce_losses
from .ctc import CTCLoss


def bigram_log_probs(targets, num_tokens: int, blank: int = 0, smoothing: float = 1.0) -> torch.Tensor:
    """Add-k smoothed token bigram log-probabilities from training transcripts, laid out as the
    arc weights of `graphs.ngram_transition_graph(num_tokens, 2)` (row 0: sentence start).
    The blank never follows anything (its transitions get -inf)."""
    counts = np.full((num_tokens + 1, num_tokens), smoothing)
    for sequence in targets:  # counting is O(total tokens); transcripts are short lists
        tokens = np.asarray(sequence, dtype=np.int64)
        history = np.concatenate([[0], tokens[:-1] + 1]) if tokens.size else np.empty(0, dtype=np.int64)
        np.add.at(counts, (history, tokens), 1.0)
    counts[:, blank] = 0.0
    with np.errstate(divide="ignore"):
        log_probs = np.log(counts / counts.sum(axis=1, keepdims=True))
    return torch.from_numpy(log_probs.reshape(-1))


class MMILoss(torch.nn.Module):
    """Maximum mutual information: -log P(transcript | emissions) under a token-bigram prior.

    `transitions` are the bigram arc weights (see `bigram_log_probs`); `learn_transitions`
    makes them a trained parameter. `modified` selects k2's O(V) CTC topology (for large
    token sets). `ctc_scale` adds that many times the CTC loss of each utterance (as LF-MMI
    systems add a cross-entropy or CTC term, which keeps the frame posteriors peaked where MMI
    alone only ranks sequences). Called as `loss(log_probs[B, T, V], targets, input_lengths,
    target_lengths)` like CTCLoss; 'mean' divides by target length, then averages.
    """

    def __init__(self, num_tokens: int, blank: int = 0, transitions: torch.Tensor | None = None,
                 learn_transitions: bool = False, modified: bool = False, reduction: str = "mean",
                 ctc_scale: float = 0.0):
        super().__init__()
        if ctc_scale < 0:
            raise ValueError(f"ctc_scale must be >= 0, got {ctc_scale}")
        self.num_tokens, self.blank, self.modified, self.ctc_scale = num_tokens, blank, modified, ctc_scale
        self.reduction = check_reduction(reduction)
        if transitions is None:
            transitions = torch.zeros((num_tokens + 1) * num_tokens)
        transitions = torch.as_tensor(transitions, dtype=torch.float32).reshape(-1)
        if learn_transitions:
            self.transitions = torch.nn.Parameter(transitions)
        else:
            self.register_buffer("transitions", transitions)

    def denominator(self, dtype: torch.dtype) -> graphs.Graph:
        """H o P with the current transition weights (kept differentiable)."""
        device = self.transitions.device
        topology = graphs.ctc_topology(self.num_tokens, self.blank, self.modified, device=device, dtype=dtype)
        prior = graphs.ngram_transition_graph(self.num_tokens, 2, weight=self.transitions.to(dtype))
        return graphs.compose(topology, prior)

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        target_lengths = torch.as_tensor(target_lengths).reshape(-1).long()
        den = self.denominator(log_probs.dtype)
        transcripts = graphs.sequence_graph(targets, target_lengths, device=log_probs.device, dtype=log_probs.dtype)
        numerators = graphs.compose(den, transcripts)
        losses = graphs.intersect_dense(log_probs, input_lengths, den) - graphs.intersect_dense(
            log_probs, input_lengths, numerators)
        if self.ctc_scale:
            ctc = CTCLoss(self.blank, reduction="none")(log_probs, targets, input_lengths, target_lengths)
            losses = losses + self.ctc_scale * ctc
        return reduce_losses(losses, self.reduction, target_lengths.to(losses.device))
