"""Word-piece transducer loss (Hannun et al. 2020, gtn_applications' TransducerLoss): the
model emits word pieces, and the loss marginalizes over every segmentation of the transcript
into pieces and every CTC alignment of each segmentation to the frames."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

import graphs
from graphs.wordpiece import WORD_MARKER, ctc_alignments, mark_words, segmentation_graph

from ._reduce import check_reduction, reduce_losses


class TransducerLoss(torch.nn.Module):
    """-log of the emission mass on all CTC alignments of all segmentations of each transcript.

    Emissions have len(pieces) + 1 columns: the blank at `blank`, piece i at `columns[i]`
    (i below the blank, i + 1 from it on). Transcripts are strings, marked with `word_marker`
    as in `graphs.wordpiece` ("the cat" -> "▁the▁cat"). With `ngram` = n > 0, learned piece
    n-gram transitions (`transitions`: zero-initialised arc weights of
    `graphs.ngram_transition_graph(len(pieces), n)`) score each piece sequence, and the loss
    adds the log-sum over all frame sequences scored alike (the denominator), so transitions
    are normalized; at zero transitions and normalized emissions it equals the ngram=0 loss.

    Called as `loss(log_probs[B, T, V], transcripts, input_lengths)`; 'mean' divides each
    loss by its marked transcript's length in characters, then averages. A transcript with no
    segmentation (or too few frames) gives inf, with zero gradient.
    """

    def __init__(self, pieces: Sequence[str], blank: int = 0, ngram: int = 0,
                 word_marker: str | None = WORD_MARKER, reduction: str = "mean"):
        super().__init__()
        self.pieces = list(pieces)
        if not 0 <= blank <= len(self.pieces):
            raise ValueError(f"blank must lie in [0, {len(self.pieces)}], got {blank}")
        if ngram < 0:
            raise ValueError(f"ngram must be >= 0, got {ngram}")
        self.blank, self.ngram, self.word_marker = blank, ngram, word_marker
        self.reduction = check_reduction(reduction)
        index = np.arange(len(self.pieces))
        self.columns = index + (index >= blank)
        if ngram:
            structure = graphs.ngram_transition_graph(len(self.pieces), ngram)
            self.num_histories = structure.num_nodes
            self.register_buffer("_src", structure.src, persistent=False)
            self.register_buffer("_dst", structure.dst, persistent=False)
            self.register_buffer("_labels", torch.from_numpy(self.columns)[structure.ilabel], persistent=False)
            self.transitions = torch.nn.Parameter(torch.zeros(structure.num_arcs))

    def transition_graph(self) -> graphs.Graph:
        """Acceptor of all piece sequences (labels are emission columns) scored by `transitions`."""
        if not self.ngram:
            raise ValueError("transition_graph: this loss has no transitions (ngram=0)")
        return graphs.Graph.from_arrays(
            self._src, self._dst, self._labels, weight=self.transitions, start=[0],
            accept=torch.arange(self.num_histories, device=self._src.device), num_nodes=self.num_histories,
        )

    def forward(self, log_probs: torch.Tensor, transcripts: Sequence[str], input_lengths) -> torch.Tensor:
        if log_probs.shape[-1] != len(self.pieces) + 1:
            raise ValueError(f"TransducerLoss: {len(self.pieces)} pieces + blank need {len(self.pieces) + 1} "
                             f"emission columns, got {log_probs.shape[-1]}")
        texts = [mark_words(text, self.word_marker) for text in transcripts]
        lattices = segmentation_graph(texts, self.pieces, labels=self.columns, word_marker=None,
                                      device=log_probs.device, dtype=log_probs.dtype)
        if self.ngram:
            transitions = self.transition_graph()
            lattices = graphs.intersect(lattices, transitions)
        losses = -graphs.intersect_dense(log_probs, input_lengths, ctc_alignments(lattices, self.blank))
        if self.ngram:
            losses = losses + graphs.intersect_dense(log_probs, input_lengths, ctc_alignments(transitions, self.blank))
        characters = torch.tensor([len(text) for text in texts], device=losses.device)
        return reduce_losses(losses, self.reduction, characters)
