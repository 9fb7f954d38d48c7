"""N-gram language models for decoding: estimation from text (interpolated modified
Kneser-Ney) and ARPA output. Reading ARPA files and building G from them (`NgramLM`,
`read_arpa`, `grammar_from_arpa`) live in `graphs.arpa` and are re-exported here.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from graphs.arpa import BOS, EOS, LN10, UNK, NgramLM, grammar_from_arpa, read_arpa
from graphs.io import atomic_open

__all__ = ["BOS", "EOS", "LN10", "UNK", "NgramLM", "estimate_kneser_ney", "grammar_from_arpa", "read_arpa",
           "with_unseen_words", "write_arpa"]


def write_arpa(lm: NgramLM, path: str | Path) -> None:
    """Write `lm` in ARPA format (atomically), n-grams in insertion order within each order."""
    by_order: dict[int, list] = {n: [] for n in range(1, lm.order + 1)}
    for ngram, entry in lm.probs.items():
        by_order[len(ngram)].append((ngram, entry))
    with atomic_open(path, "w") as f:
        f.write("\\data\\\n")
        for n, entries in by_order.items():
            f.write(f"ngram {n}={len(entries)}\n")
        for n, entries in by_order.items():
            f.write(f"\n\\{n}-grams:\n")
            for ngram, (logprob, backoff) in entries:
                tail = "" if backoff is None else f"\t{backoff:.6g}"
                f.write(f"{logprob:.6g}\t{' '.join(ngram)}{tail}\n")
        f.write("\n\\end\\\n")


def with_unseen_words(lm: NgramLM, words: Iterable[str]) -> NgramLM:
    """A copy of `lm` in which `words` it lacks are unigrams of <unk>'s probability (or the
    least likely unigram's when it has no <unk>): words it never saw, made reachable."""
    unigrams = {ngram[0]: logprob for ngram, (logprob, _) in lm.probs.items() if len(ngram) == 1}
    floor = unigrams.get(UNK, min(unigrams.values()))
    return NgramLM(lm.order, {**lm.probs, **{(word,): (floor, None) for word in words if word not in unigrams}})


def estimate_kneser_ney(sentences: Iterable[Sequence[str]], order: int = 3) -> NgramLM:
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998, as KenLM's lmplz estimates it).

    The highest order uses raw counts; lower orders use continuation counts (the number of
    distinct words seen before the n-gram), except n-grams starting with <s>, which nothing can
    precede. Each order has three discounts D1, D2, D3+ from its count-of-counts; when a small
    corpus leaves them undefined (a count-of-count is 0) or out of range, they are clamped to
    [0.1, k] (a zero discount would leave no mass to back off with). Unigrams are interpolated with the uniform distribution over the vocabulary, </s>
    and <unk>, so every history's distribution sums to one.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]  # counts[n][ngram]
    for sentence in sentences:
        tokens = [BOS, *sentence, EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                counts[n][tuple(tokens[i:i + n])] += 1
    if not counts[1]:
        raise ValueError("estimate_kneser_ney: no sentences")
    adjusted: list[Counter] = [Counter() for _ in range(order + 1)]
    adjusted[order] = counts[order]
    for n in range(order - 1, 0, -1):
        for ngram in counts[n + 1]:
            adjusted[n][ngram[1:]] += 1  # one more distinct left context for the suffix
        for ngram, count in counts[n].items():
            if ngram[0] == BOS:
                adjusted[n][ngram] = count
    adjusted[1].pop((BOS,), None)
    vocabulary = sorted({w for (w,) in adjusted[1]} | {UNK, EOS})
    lm = NgramLM(order=order)
    lower: dict[tuple[str, ...], float] = {}  # interpolated probabilities of the lower orders (every suffix is there)
    for n in range(1, order + 1):
        discount = _discounts(adjusted[n])
        totals, mass = Counter(), Counter()
        for ngram, a in adjusted[n].items():
            totals[ngram[:-1]] += a
            mass[ngram[:-1]] += discount[min(a, 3)]
        probs = {}
        if n == 1:
            uniform = mass[()] / totals[()] / len(vocabulary)
            for word in vocabulary:
                a = adjusted[1].get((word,), 0)
                probs[(word,)] = (a - discount[min(a, 3)]) / totals[()] + uniform if a else uniform
        else:
            for ngram, a in adjusted[n].items():
                history = ngram[:-1]
                backoff = mass[history] / totals[history]
                probs[ngram] = (a - discount[min(a, 3)]) / totals[history] + backoff * lower[ngram[1:]]
        if n > 1:  # the back-off weight of each history of order n - 1 that has continuations
            for history in totals:
                logprob, _ = lm.probs[history]
                lm.probs[history] = (logprob, math.log10(mass[history] / totals[history]))
        for ngram, p in probs.items():
            lm.probs[ngram] = (math.log10(p), None)
        if n == 1:
            lm.probs[(BOS,)] = (-99.0, None)  # <s> is never predicted
        lower.update(probs)
    return lm


def _discounts(adjusted: Counter) -> dict[int, float]:
    """{0: 0, 1: D1, 2: D2, 3: D3+} from the count-of-counts of one order."""
    t = Counter(min(a, 4) for a in adjusted.values())
    if t[1] and t[2]:
        y = t[1] / (t[1] + 2 * t[2])
        raw = {1: 1 - 2 * y * t[2] / t[1], 2: 2 - 3 * y * t[3] / t[2], 3: 3 - 4 * y * t[4] / t[3] if t[3] else 3.0}  # no 3-counts: the largest allowed
    else:
        raw = {1: 0.5, 2: 1.0, 3: 1.5}
    return {0: 0.0, **{k: min(float(k), max(0.1, d)) for k, d in raw.items()}}
