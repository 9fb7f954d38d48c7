"""Back-off n-gram language models in ARPA format, and the grammar acceptor G built from them.

`NgramLM.probs[ngram] = (log10 p, log10 back-off or None)`, keyed by word tuples with `<s>` and
`</s>` as in ARPA. `grammar_from_arpa` builds G the way Kaldi's arpa2fst does: one node per
history, a word arc per n-gram into the node of its longest existing suffix, a back-off arc
(epsilon, or `#0` when G is to be determinized) to the shorter history, and `</s>` as an
epsilon arc into the accept node (our graphs have no final weights). As in Kaldi, a word may
be reached both directly and through back-off arcs; the tropical best path is the ARPA
probability whenever the explicit n-gram outscores backing off, as it does in estimated models.
Writing ARPA files and estimating models from text live in `asr.lm`.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .graph import EPSILON, Graph

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
    """Parse an ARPA file (gzipped when its name ends in .gz); errors name the file and line."""
    path = Path(path)
    declared: dict[int, int] = {}
    lm, section = NgramLM(order=0), None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
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


def grammar_from_arpa(lm: NgramLM | str | os.PathLike, words: Sequence[str] | None = None,
                      backoff_label: int = EPSILON) -> Graph:
    """G: an acceptor over word indexes into `words` (default: the LM's vocabulary; n-grams with
    other words are dropped) with natural-log weights, from an `NgramLM` or an ARPA file. Node 0
    is the history <s> (the start); the last node accepts."""
    if not isinstance(lm, NgramLM):
        lm = read_arpa(lm)
    if words is None:
        words = lm.words()
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
        label.append(EPSILON if word == EOS else index[word])
        weight.append(logprob * LN10)
    for history, node in nodes.items():
        if history:  # back off to the next shorter history
            backoff = lm.probs.get(history, (0.0, None))[1]
            src.append(node)
            dst.append(node_of(history[1:]))
            label.append(backoff_label)
            weight.append((backoff or 0.0) * LN10)
    return Graph.from_arrays(src, dst, label, weight=weight, start=[0], accept=[final], num_nodes=final + 1)
