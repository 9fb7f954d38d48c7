"""Back-off n-gram language models: ARPA files in and out, and the grammar acceptor G.

`NgramLM.probs[ngram] = (log10 p, log10 back-off or None)`, keyed by word tuples with `<s>` and
`</s>` as in ARPA. `grammar_from_arpa` builds G the way Kaldi's arpa2fst does: one node per
history, a word arc per n-gram into the node of its longest existing suffix, a back-off arc
(epsilon, or `#0` when G is to be determinized) to the shorter history, and `</s>` as an
epsilon arc into the accept node (our graphs have no final weights). As in Kaldi, a word may
be reached both directly and through back-off arcs; the tropical best path is the ARPA
probability whenever the explicit n-gram outscores backing off, as it does in estimated models.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import graphs

from .files import atomic_open

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
_COUNT_LINE = re.compile(r"^ngram (\d+)\s*=\s*(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


@dataclass
class NgramLM:
    """An ARPA back-off model: `order` and `probs` (see the module docstring)."""

    order: int
    probs: dict[tuple[str, ...], tuple[float, float | None]] = field(default_factory=dict)

    def log10_prob(self, word: str, history: Sequence[str]) -> float:
        """log10 P(word | history) with back-off: the longest n-gram present, plus the back-off
        weights of the histories dropped to reach it (-inf if the word is unknown)."""
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            entry = self.probs.get(history + (word,))
            if entry is not None:
                return penalty + entry[0]
            if not history:
                return float("-inf")
            backoff = self.probs.get(history, (0.0, None))[1]
            penalty += backoff or 0.0
            history = history[1:]

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 P(<s> words </s>)."""
        history, total = [BOS], 0.0
        for word in [*words, EOS]:
            total += self.log10_prob(word, history)
            history.append(word)
        return total

    def words(self) -> list[str]:
        """The vocabulary (unigrams other than <s> and </s>), in file order."""
        return [ngram[0] for ngram in self.probs if len(ngram) == 1 and ngram[0] not in (BOS, EOS)]


def read_arpa(path: str | Path) -> NgramLM:
    """Parse an ARPA file; errors name the file and line."""
    path = Path(path)
    declared: dict[int, int] = {}
    lm, section = NgramLM(order=0), None
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            where = f"{path}, line {number}"
            if not line:
                continue
            if line == "\\data\\":
                section = "data"
            elif line == "\\end\\":
                section = "end"
            elif _SECTION.match(line):
                section = int(_SECTION.match(line).group(1))
                if section not in declared:
                    raise ValueError(f"{where}: {section}-grams were not declared in \\data\\")
            elif section == "data":
                match = _COUNT_LINE.match(line)
                if not match:
                    raise ValueError(f"{where}: expected `ngram N=COUNT` in \\data\\, got {line!r}")
                declared[int(match.group(1))] = int(match.group(2))
            elif isinstance(section, int):
                fields = line.split()
                if len(fields) not in (section + 1, section + 2):
                    raise ValueError(f"{where}: a {section}-gram line needs log10 prob, {section} words and an "
                                     f"optional back-off, got {line!r}")
                try:
                    logprob = float(fields[0])
                    backoff = float(fields[section + 1]) if len(fields) == section + 2 else None
                except ValueError:
                    raise ValueError(f"{where}: not a number in {line!r}") from None
                lm.probs[tuple(fields[1:section + 1])] = (logprob, backoff)
            elif section is None:
                continue  # text before \data\ is a comment
            else:
                raise ValueError(f"{where}: unexpected {line!r}")
    if section != "end":
        raise ValueError(f"{path}: no \\end\\ (truncated ARPA file?)")
    lm.order = max(declared, default=0)
    for n, count in declared.items():
        found = sum(1 for ngram in lm.probs if len(ngram) == n)
        if found != count:
            raise ValueError(f"{path}: \\data\\ declares {count} {n}-grams but the file has {found}")
    return lm


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


def grammar_from_arpa(lm: NgramLM, words: Sequence[str], backoff_label: int = graphs.EPSILON) -> graphs.Graph:
    """G: an acceptor over word indexes into `words` (n-grams with other words are dropped) with
    natural-log weights. Node 0 is the history <s> (the start); the last node accepts."""
    index = {w: i for i, w in enumerate(words)}
    histories = {ngram for ngram in lm.probs if len(ngram) < lm.order and ngram[-1] != EOS}
    histories.add(())
    nodes = {(BOS,): 0}
    for history in sorted(histories - {(BOS,)}, key=lambda h: (len(h), h)):
        nodes[history] = len(nodes)
    final = len(nodes)

    def node_of(context: tuple[str, ...]) -> int:
        while context not in nodes:
            context = context[1:]
        return nodes[context]

    src, dst, label, weight = [], [], [], []
    for ngram, (logprob, _) in lm.probs.items():
        history, word = ngram[:-1], ngram[-1]
        if word == BOS or history not in nodes or not (word == EOS or word in index):
            continue
        src.append(nodes[history])
        dst.append(final if word == EOS else node_of((history + (word,))[-(lm.order - 1):] if lm.order > 1 else ()))
        label.append(graphs.EPSILON if word == EOS else index[word])
        weight.append(logprob * LN10)
    for history, node in nodes.items():
        if history:  # back off to the next shorter history
            backoff = lm.probs.get(history, (0.0, None))[1]
            src.append(node)
            dst.append(node_of(history[1:]))
            label.append(backoff_label)
            weight.append((backoff or 0.0) * LN10)
    return graphs.Graph.from_arrays(src, dst, label, weight=weight, start=[0], accept=[final], num_nodes=final + 1)


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
