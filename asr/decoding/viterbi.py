"""Exact decoding: the best path through a decoding graph without epsilon input arcs.

`graphs.align_dense` finds the best path of each utterance through the emissions composed
with the graph; the words are the output labels of the arcs taken, and their times come from
the same path. Graphs with epsilon input arcs (an HLG with back-off or disambiguation arcs)
are searched with `BeamSearchDecoder` instead.
"""

from __future__ import annotations

import torch

import graphs

from .align import word_spans
from .graph import DecodingGraph
from .hypothesis import Hypothesis, hypotheses_from_path


def viterbi_words(log_probs: torch.Tensor, lengths, graph: graphs.Graph
                  ) -> tuple[list[list[int]], graphs.DenseAlignment]:
    """Word labels on the best path of each utterance through `graph` (shared by the batch),
    and that path (`.score` [B], -inf where no path fits the utterance; `.arcs` and `.labels`
    per frame, for word times)."""
    alignment = graphs.align_dense(log_probs, lengths, graph)
    olabel = graph.olabel.to(alignment.arcs.device)
    taken = alignment.arcs >= 0
    words = torch.where(taken, olabel[alignment.arcs.clamp(min=0)], torch.full_like(alignment.arcs, graphs.EPSILON))
    keep = words != graphs.EPSILON
    counts = keep.sum(dim=1).tolist()
    return [row.tolist() for row in torch.split(words[keep], counts)], alignment


class ViterbiDecoder:
    """The best path through `graph` (which must have no epsilon input arcs), computed in
    float64; word times from that path."""

    def __init__(self, graph: DecodingGraph):
        if bool((graph.graph.ilabel == graphs.EPSILON).any()):
            raise ValueError("exact Viterbi decoding needs a graph without epsilon input arcs; "
                             "search this one with BeamSearchDecoder")
        self.graph = graph

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        labels, alignment = viterbi_words(log_probs.double(), lengths, self.graph.graph)
        topology = self.graph.topology
        spans = word_spans(alignment, [self.graph.graph.olabel], lengths, topology.blank)
        words = [[self.graph.words[w] for w in ws] for ws in labels]
        return hypotheses_from_path(words, spans, alignment, lengths, topology.token_runs)
