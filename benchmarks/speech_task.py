"""A seeded large-vocabulary decoding task without audio: a lexicon of real English words
spelled in letters, a word-level text source to estimate a trigram LM from, held-out
sentences, and CTC-like emissions for them.

Words: `num_words` words of 2-12 letters drawn (seeded) from the GCIDE dictionary word list
of the `english-words` package. Text: a sparse Markov source: each word has 8 favoured
successors (taken with probability 0.6), otherwise the next word is Zipf-distributed over
the vocabulary, so a trigram LM has real back-off structure. Emissions: each letter lasts
1-3 frames with 0-2 blank frames around it (always one between repeated letters); every
frame's label score is 0 for its label and drawn from N(-noise_mean, noise_sd) for the
others, then log-softmaxed; with probability `confusion` a letter frame's best label is a
random other letter instead, so spelling alone is ambiguous and the LM matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"
TOKENS = ["<blk>", *LETTERS]  # token 0 is the CTC blank


@dataclass
class SpeechTask:
    words: list[str]
    train_sentences: list[list[str]]
    test_sentences: list[list[str]]

    def lexicon(self) -> list[tuple[int, list[int]]]:
        """(word index, letter token ids) entries."""
        return [(i, [TOKENS.index(c) for c in word]) for i, word in enumerate(self.words)]


def word_list(num_words: int, seed: int = 0) -> list[str]:
    from english_words import get_english_words_set  # a benchmark-only dependency

    candidates = sorted(w for w in get_english_words_set(["gcide"], lower=True)
                        if 2 <= len(w) <= 12 and set(w) <= set(LETTERS))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(candidates, size=num_words, replace=False).tolist())


def make_task(num_words: int = 5000, train_sentences: int = 40000, test_sentences: int = 100,
              seed: int = 0) -> SpeechTask:
    words = word_list(num_words, seed)
    rng = np.random.default_rng(seed + 1)
    rank = rng.permutation(num_words)
    unigram = 1.0 / (1 + rank)
    unigram /= unigram.sum()
    successors = rng.choice(num_words, size=(num_words, 8), p=unigram)
    total = train_sentences + test_sentences
    lengths = rng.integers(4, 16, size=total)
    # All draws up front: a Zipf word, a favoured-successor choice and a coin per position.
    zipf = np.searchsorted(np.cumsum(unigram), rng.random(int(lengths.sum())) * unigram.sum()).clip(max=num_words - 1)
    favoured = rng.integers(8, size=zipf.size)
    coin = rng.random(zipf.size) < 0.6
    sentences, position = [], 0
    for length in lengths:
        current, ids = int(zipf[position]), []
        for i in range(position, position + length):
            if i > position:
                current = int(successors[current, favoured[i]]) if coin[i] else int(zipf[i])
            ids.append(current)
        sentences.append([words[i] for i in ids])
        position += length
    return SpeechTask(words, sentences[:train_sentences], sentences[train_sentences:])


def emissions(sentences: list[list[str]], confusion: float = 0.15, noise_mean: float = 6.0, noise_sd: float = 2.0,
              seed: int = 2, runner_up: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC-like log-probabilities [B, T, 27] for the letters of each sentence, and lengths [B].
    `runner_up`: on a confused frame the true letter scores this far below the shown one (as a
    real model's second choice would) instead of drawing from the noise."""
    rng = np.random.default_rng(seed)
    paths, truths = [], []
    for words in sentences:
        letters = [TOKENS.index(c) for c in "".join(words)]
        path = [0] * int(rng.integers(0, 3))
        truth = list(path)
        for i, letter in enumerate(letters):
            if i and letters[i - 1] == letter:
                path.append(0)
                truth.append(0)
            shown = letter if rng.random() >= confusion else int(rng.integers(1, len(TOKENS)))
            duration, pause = int(rng.integers(1, 4)), int(rng.integers(0, 3))
            path += [shown] * duration + [0] * pause
            truth += [letter] * duration + [0] * pause
        paths.append(path)
        truths.append(truth)
    lengths = torch.tensor([len(p) for p in paths])
    scores = rng.normal(-noise_mean, noise_sd, size=(len(paths), int(lengths.max()), len(TOKENS)))
    for b, (path, truth) in enumerate(zip(paths, truths)):
        frames = np.arange(len(path))
        if runner_up is not None:
            scores[b, frames, truth] = -runner_up
        scores[b, frames, path] = 0.0
    return torch.from_numpy(scores).float().log_softmax(-1), lengths
