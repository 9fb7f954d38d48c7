"""N-best lists from word lattices, and their rescoring with another (larger) n-gram LM.

A lattice path's score is the acoustic score plus `lm_scale` times the decoding graph's LM
log-probability (natural log) plus `word_score` per word. Rescoring swaps the LM part: it
subtracts `lm_scale` times the old LM's probability of the sentence and adds the new one's,
both computed exactly from the ARPA models (as Kaldi's lattice-lmrescore with a
deterministic on-demand LM), so the n-best list is reordered by acoustic + new LM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import graphs

from ..arpa_table import ArpaTable
from ..lm import LN10, NgramLM


@dataclass
class ScoredWords:
    """A word sequence (graph output labels) and its total score."""

    words: list[int]
    score: float


def lattice_nbest(lattice: graphs.Graph, n: int) -> list[ScoredWords]:
    """The n best word sequences of a word lattice (`WfstDecoder`'s `BeamSearchResult.lattices[b]`), best
    first. In a lattice left undeterminized, a sequence may have several paths: the best is
    kept, and the list may then be shorter than n."""
    hypotheses, seen = [], set()
    for path in graphs.nbest(lattice, n):
        ordered = graphs.topsort(path)
        words = [int(w) for w in ordered.olabel.tolist() if w != graphs.EPSILON]
        if tuple(words) not in seen:
            seen.add(tuple(words))
            hypotheses.append(ScoredWords(words, float(ordered.weight.sum())))
    return hypotheses


def rescore(hypotheses: Sequence[ScoredWords], words: Sequence[str], old_lm: NgramLM | ArpaTable,
            new_lm: NgramLM | ArpaTable,
            lm_scale: float = 1.0) -> list[ScoredWords]:
    """The hypotheses with the old LM's contribution replaced by the new LM's, best first.
    A sentence the new LM gives probability zero (an unknown word and no <unk>) gets -inf."""
    rescored = []
    for hypothesis in hypotheses:
        sentence = [words[w] for w in hypothesis.words]
        change = new_lm.sentence_log10_prob(sentence) - old_lm.sentence_log10_prob(sentence)
        rescored.append(ScoredWords(hypothesis.words, hypothesis.score + lm_scale * LN10 * change))
    return sorted(rescored, key=lambda h: h.score, reverse=True)
