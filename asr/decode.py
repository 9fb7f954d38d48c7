"""Decoding emissions into token and word sequences: greedy CTC, and Viterbi through a decoding graph.

The decoding graph HLG maps frame labels to words: H is the CTC topology, L the lexicon,
G the grammar (an acceptor over words). Its best path through the emissions is found by
`graphs.align_dense`; the words are the output labels of the arcs taken. Large graphs
(`asr.lang.compile_hlg`, with epsilon arcs) are searched with `WfstDecoder` (beam search).
"""

from __future__ import annotations

import torch

import graphs

from .beam_search import BeamSearchResult, WfstDecoder

__all__ = ["BeamSearchResult", "WfstDecoder", "decoding_graph", "greedy_ctc", "viterbi_words"]


def greedy_ctc(log_probs: torch.Tensor, lengths, blank: int = 0) -> list[list[int]]:
    """Best label per frame, repeats merged and blanks dropped, for each utterance."""
    best = log_probs.argmax(-1)
    lengths = torch.as_tensor(lengths, device=best.device)
    frames = torch.arange(best.shape[1], device=best.device)
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    keep = (best != previous) & (best != blank) & (frames.unsqueeze(0) < lengths.unsqueeze(1))
    counts = keep.sum(dim=1).tolist()
    return [row.tolist() for row in torch.split(best[keep], counts)]


def decoding_graph(num_tokens: int, pronunciations, grammar: graphs.Graph, blank: int = 0) -> graphs.Graph:
    """H o (L o G): frame labels in, words out. `pronunciations` are (word, tokens) pairs;
    `grammar` is an acceptor over the same word labels (without epsilon inputs)."""
    lexicon = graphs.arc_sort(graphs.lexicon_graph(pronunciations), by="olabel")
    words = graphs.compose(lexicon, grammar)
    return graphs.compose(graphs.ctc_topology(num_tokens, blank), words)


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
