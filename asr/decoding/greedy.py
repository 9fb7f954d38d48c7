"""Decoding without a graph: greedy CTC (the best token of every frame) and CTC prefix beam
search, both read back into words by the tokenizer; word times by forced alignment of those
words. A phone model's "words" are its phones."""

from __future__ import annotations

import torch

from ..tokenizer import Tokenizer
from .align import Spell, aligned_hypotheses
from .context import ContextGraph
from .hypothesis import Hypothesis
from .prefix_search import prefix_beam_search
from .topology import CTCTopology, Topology


def greedy_ctc(log_probs: torch.Tensor, lengths, blank: int = 0) -> list[list[int]]:
    """Best label per frame, repeats merged and blanks dropped, for each utterance."""
    return CTCTopology(blank).greedy(log_probs, lengths)


def _word_speller(tokenizer: Tokenizer) -> Spell:
    """Spellings of the words `tokenizer.decode` returns: its own, or for phones the phone."""
    if tokenizer.kind == "phone":
        phones = {phone: [[i]] for i, phone in enumerate(tokenizer.tokens)}
        return phones.__getitem__
    return tokenizer.spellings


class GreedyDecoder:
    """The best label of every frame read by the model's topology (CTC: repeats merged and
    blanks dropped), as words."""

    def __init__(self, tokenizer: Tokenizer, topology: Topology | None = None):
        self.tokenizer, self.topology = tokenizer, topology or CTCTopology()
        self.spell = _word_speller(tokenizer)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        words = [self.tokenizer.decode(tokens).split() for tokens in self.topology.greedy(log_probs, lengths)]
        return aligned_hypotheses(log_probs, lengths, words, self.spell, topology=self.topology)


class PrefixBeamDecoder:
    """CTC prefix beam search keeping `beam` prefixes (`prefix_beam_search`): any word the
    tokens can spell may come out, biased toward the phrases of `context` when given. For
    character and word-piece models."""

    def __init__(self, tokenizer: Tokenizer, beam: int, context: ContextGraph | None = None):
        if tokenizer.kind == "phone":
            raise ValueError("lexicon-free decoding needs a character or word-piece model; this one outputs phones")
        self.tokenizer, self.beam, self.spell, self.context = tokenizer, beam, _word_speller(tokenizer), context

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        found = prefix_beam_search(log_probs, lengths, self.beam, context=self.context)
        words = [self.tokenizer.decode(tokens).split() for tokens in found.tokens]
        return aligned_hypotheses(log_probs, lengths, words, self.spell, found.score.tolist())
