"""Decoding emissions into token and word sequences: greedy CTC, and Viterbi through a decoding graph.

The decoding graph HLG maps frame labels to words: H is the CTC topology, L the lexicon,
G the grammar (an acceptor over words). Its best path through the emissions is found by
`graphs.align_dense`; the words are the output labels of the arcs taken. Large graphs
(`asr.lang.compile_hlg`, with epsilon arcs) are searched with `WfstDecoder` (beam search);
`prefix_beam_search` decodes without a lexicon (characters or word pieces).
"""

from __future__ import annotations

import bisect
from typing import Sequence

import torch

import graphs

from .beam_search import BeamSearchResult, WfstDecoder
from .prefix_search import PrefixSearchResult, prefix_beam_search

__all__ = ["BeamSearchResult", "PrefixSearchResult", "WfstDecoder", "decoding_graph", "force_align", "greedy_ctc",
           "prefix_beam_search", "viterbi_words", "word_spans"]


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


def word_spans(alignment: graphs.DenseAlignment, olabels: Sequence[torch.Tensor], lengths, blank: int = 0
               ) -> list[list[tuple[int, int]]]:
    """(first, last) frame of each word on best paths through graphs whose words sit on the
    first arc of their tokens (`lexicon_graph`): a word starts at the frame whose arc carries it
    and ends at its last non-blank frame before the next word starts (or at its first frame).
    `olabels[b]` are the output labels of utterance b's graph (one tensor shared is fine);
    an utterance without a path has no words."""
    spans = []
    for b, length in enumerate(torch.as_tensor(lengths).tolist()):
        if alignment.score[b] == float("-inf"):  # no path
            spans.append([])
            continue
        arcs = alignment.arcs[b, :length]
        olabel = olabels[b if len(olabels) > 1 else 0]
        starts = (olabel[arcs.clamp(min=0)] != graphs.EPSILON).nonzero().flatten().tolist()
        speech = (alignment.labels[b, :length] != blank).nonzero().flatten().tolist()
        stops = starts[1:] + [length]
        ends = []
        for start, stop in zip(starts, stops):
            last = bisect.bisect_left(speech, stop) - 1
            ends.append(speech[last] if last >= 0 and speech[last] >= start else start)
        spans.append(list(zip(starts, ends)))
    return spans


def force_align(log_probs: torch.Tensor, lengths, transcripts: Sequence[Sequence[Sequence[Sequence[int]]]],
                blank: int = 0) -> tuple[list[list[tuple[int, int]]], graphs.DenseAlignment]:
    """Forced alignment of known transcripts: `transcripts[b][i]` lists the token spellings of
    word i of utterance b (any of them may be taken). Returns each word's (first, last) frame
    and the best path (`.labels`: the token of every frame, `.score`: -inf where the
    transcript cannot fit the frames). One batched compose and alignment for all utterances."""
    num_tokens = log_probs.shape[-1]
    lexicons, positions = [], []
    for words in transcripts:
        entries = [(i, list(pron)) for i, prons in enumerate(words) for pron in prons]
        lexicons.append(graphs.lexicon_graph(entries) if entries else
                        graphs.Graph.from_arrays([], [], [], start=[0], accept=[0], num_nodes=1))
        count = len(words)
        positions.append(graphs.Graph.from_arrays(list(range(count)), list(range(1, count + 1)), list(range(count)),
                                                  start=[0], accept=[count], num_nodes=count + 1))
    spelled = graphs.compose([graphs.arc_sort(lexicon, by="olabel") for lexicon in lexicons], positions)
    topology = graphs.ctc_topology(num_tokens, blank)
    paths = graphs.compose([topology] * len(spelled), spelled)
    alignment = graphs.align_dense(log_probs, lengths, [p.to(dtype=log_probs.dtype) for p in paths])
    return word_spans(alignment, [p.olabel for p in paths], lengths, blank), alignment
