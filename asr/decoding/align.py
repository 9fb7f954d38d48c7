"""Forced alignment: the best frame path of known words, for `asr align` and for the word
times of every search that finds words without a frame path (beam, prefix and greedy search).

Words are given as token spellings (any of a word's spellings may be taken); each
utterance's words become a chain graph composed with the lexicon of its spellings and the
model's topology (CTC's H by default), and all utterances are aligned in one batched
`graphs.align_dense`.
"""

from __future__ import annotations

import bisect
from typing import Callable, Sequence

import torch

import graphs

from .hypothesis import Hypothesis, hypotheses_from_path
from .topology import CTCTopology, Topology

Spell = Callable[[str], Sequence[Sequence[int]]]  # a word's token spellings


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
                topology: Topology | None = None) -> tuple[list[list[tuple[int, int]]], graphs.DenseAlignment]:
    """Forced alignment of known transcripts: `transcripts[b][i]` lists the token spellings of
    word i of utterance b (any of them may be taken), as `topology` (default CTC) reads them. Returns each word's (first, last) frame
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
    topology = topology or CTCTopology()
    frames_to_tokens = topology.graph(num_tokens)
    paths = graphs.compose([frames_to_tokens] * len(spelled), spelled)
    alignment = graphs.align_dense(log_probs, lengths, [p.to(dtype=log_probs.dtype) for p in paths])
    return word_spans(alignment, [p.olabel for p in paths], lengths, topology.blank), alignment


def aligned_hypotheses(log_probs: torch.Tensor, lengths, words: Sequence[Sequence[str]], spell: Spell,
                       scores: Sequence[float] | None = None, topology: Topology | None = None) -> list[Hypothesis]:
    """Hypotheses of `words` (found by a search) with frame times from their forced alignment
    through `topology` (default CTC); `scores` are the search's own scores (default: the
    alignment's)."""
    topology = topology or CTCTopology()
    spans, alignment = force_align(log_probs, lengths, [[spell(w) for w in ws] for ws in words], topology)
    hypotheses = hypotheses_from_path(words, spans, alignment, lengths, topology.token_runs)
    if scores is not None:
        for hypothesis, score in zip(hypotheses, scores):
            hypothesis.score = float(score)
    return hypotheses


class ForcedAligner:
    """A decoder that finds no words but aligns the given ones: `texts[b]` are utterance b's
    words, spelled by `spell` as `topology` reads them. A hypothesis whose words cannot fit
    its frames has score -inf."""

    def __init__(self, texts: Sequence[Sequence[str]], spell: Spell, topology: Topology | None = None):
        self.texts, self.spell, self.topology = texts, spell, topology

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        if len(self.texts) != log_probs.shape[0]:
            raise ValueError(f"forced alignment: {len(self.texts)} transcripts for a batch of {log_probs.shape[0]}")
        return aligned_hypotheses(log_probs, lengths, self.texts, self.spell, topology=self.topology)
