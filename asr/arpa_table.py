"""ARPA back-off models too large for `NgramLM`'s dictionary (LibriSpeech's 4-gram: hundreds of
millions of n-grams), held as sorted numpy tables for scoring sentences, as lattice
rescoring needs.

Each order n has one row per n-gram, sorted by `key = row of its (n-1)-word prefix *
vocabulary size + last word` (a unigram's key is its word id), with float32 log10 probability
and back-off: 16 bytes an n-gram, against a few hundred for a dict of tuples. ARPA files
written by SRILM, KenLM or `asr lm` list every prefix of an n-gram as an n-gram too; a file
that does not is refused by name. A table is saved as `.npz` (`save` / `load`), so a model is
parsed once.
"""

from __future__ import annotations

import array
import gzip
import io
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from graphs.io import atomic_open

from .lm import BOS, EOS

_NO_ROW = -1


class ArpaTable:
    """A back-off n-gram model in sorted arrays (see the module docstring); scores match
    `NgramLM` on the same file (to float32 precision), an unknown word scoring -inf."""

    def __init__(self, words: Sequence[str], keys: list[np.ndarray], logprob: list[np.ndarray],
                 backoff: list[np.ndarray]):
        self.words = list(words)  # the unigrams in file order; a word's id is its index
        self.index = {word: i for i, word in enumerate(self.words)}
        self.keys, self.logprob, self.backoff = keys, logprob, backoff

    @property
    def order(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        """The number of n-grams of every order."""
        return sum(len(k) for k in self.keys)

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 P(<s> words </s>), backing off as ARPA models do."""
        ids = np.array([self.index[BOS], *(self.index.get(w, _NO_ROW) for w in words), self.index[EOS]], dtype=np.int64)
        rows = [ids]  # rows[n - 1][i]: the row of the n-gram ending at position i (a unigram's is its id)
        for n in range(2, self.order + 1):
            prefix = np.concatenate([[_NO_ROW], rows[-1][:-1]])  # the (n-1)-gram ending one word earlier
            rows.append(self._find(n, prefix, ids))
        total = 0.0
        for i in range(1, len(ids)):
            found = [n for n in range(min(self.order, i + 1), 0, -1) if rows[n - 1][i] >= 0]
            if not found:
                return float("-inf")
            n = found[0]
            total += float(self.logprob[n - 1][rows[n - 1][i]])
            for k in range(n, min(self.order - 1, i) + 1):  # the longer histories backed off from
                history = rows[k - 1][i - 1]
                if history >= 0:
                    total += float(self.backoff[k - 1][history])
        return total

    def _find(self, n: int, prefix_rows: np.ndarray, last: np.ndarray) -> np.ndarray:
        """The row in order n's table of (prefix row, last word) for each pair, or -1."""
        wanted = (prefix_rows >= 0) & (last >= 0)
        rows = _lookup(self.keys[n - 1], np.where(wanted, prefix_rows * len(self.words) + last, 0))
        return np.where(wanted, rows, _NO_ROW)

    def save(self, path: str | Path) -> None:
        """Write the table as an .npz file (atomically)."""
        arrays = {"words": np.array(self.words, dtype=object).astype(str)}
        for n in range(1, self.order + 1):
            arrays |= {f"keys{n}": self.keys[n - 1], f"logprob{n}": self.logprob[n - 1],
                       f"backoff{n}": self.backoff[n - 1]}
        with atomic_open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ArpaTable:
        with np.load(path) as data:
            order = sum(1 for name in data.files if name.startswith("keys"))
            return cls(data["words"].tolist(), *([data[f"{part}{n}"] for n in range(1, order + 1)]
                                                 for part in ("keys", "logprob", "backoff")))

    @classmethod
    def read(cls, path: str | Path, progress: bool = False) -> ArpaTable:
        """Parse an ARPA file (gzipped when its name ends in .gz) section by section into the
        tables; errors name the file and line. `progress`: a bar over the n-grams read."""
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f, tqdm(disable=not progress, unit=" n-grams", unit_scale=True,
                                                             desc=f"reading {path.name}") as bar:
            return _ArpaReader(path, f, bar).read()

    @classmethod
    def cached(cls, arpa: str | Path, cache: str | Path, progress: bool = True) -> ArpaTable:
        """The table of `arpa`, from `cache` when that is newer than the ARPA file, else read
        and saved there."""
        arpa, cache = Path(arpa), Path(cache)
        if cache.is_file() and cache.stat().st_mtime >= arpa.stat().st_mtime:
            return cls.load(cache)
        table = cls.read(arpa, progress=progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        table.save(cache)
        return table


def _lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The position of each query in the sorted `keys`, or -1 where it is absent."""
    if not len(keys):
        return np.full(query.shape, _NO_ROW, dtype=np.int64)
    where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[where] == query, where, _NO_ROW)


class _ArpaReader:
    """One pass over an ARPA file: the \\data\\ counts, then each order's lines into arrays."""

    def __init__(self, path: Path, lines: io.TextIOBase, bar: tqdm):
        self.path, self.lines, self.bar, self.number = path, lines, bar, 0

    def _next(self) -> str:
        """The next non-blank line, stripped ('' at the end of the file)."""
        for raw in self.lines:
            self.number += 1
            line = raw.strip()
            if line:
                return line
        return ""

    def _error(self, message: str) -> ValueError:
        return ValueError(f"{self.path}, line {self.number}: {message}")

    def read(self) -> ArpaTable:
        line = self._next()
        while line and line != "\\data\\":  # text before \data\ is a comment
            line = self._next()
        declared = []
        line = self._next()
        while line.startswith("ngram "):
            n, _, count = line[len("ngram "):].partition("=")
            if not (n.strip().isdigit() and count.strip().isdigit()) or int(n) != len(declared) + 1:
                raise self._error(f"expected `ngram {len(declared) + 1}=COUNT`, got {line!r}")
            declared.append(int(count))
            line = self._next()
        if not declared:
            raise self._error("no `ngram N=COUNT` lines: not an ARPA file")
        words: list[str] = []
        keys, logprobs, backoffs = [], [], []
        for n, count in enumerate(declared, start=1):
            if line != f"\\{n}-grams:":
                raise self._error(f"expected \\{n}-grams:, got {line!r}")
            ids, logprob, backoff = self._section(n, count, words)
            if n == 1:
                words += ids.pop()
                if len(set(words)) != len(words):
                    raise ValueError(f"{self.path}: a unigram appears twice")
                ids = [np.arange(len(words), dtype=np.int64)]
            key, order = self._keys(n, ids, keys, len(words))
            keys.append(key)
            logprobs.append(logprob[order])
            backoffs.append(backoff[order])
            line = self._next()
        if line != "\\end\\":
            raise self._error(f"expected \\end\\, got {line!r:.80}" if line else "no \\end\\ (truncated ARPA file?)")
        return ArpaTable(words, keys, logprobs, backoffs)

    def _section(self, n: int, count: int, words: list[str]):
        """The `count` lines of order n: word ids per position (the words themselves for
        unigrams), log10 probabilities and back-offs (0 where absent)."""
        index = {word: i for i, word in enumerate(words)}
        ids, names = array.array("i"), []
        logprob, backoff = array.array("f"), array.array("f")
        add_ids, add_logprob, add_backoff, word_id = ids.extend, logprob.append, backoff.append, index.__getitem__
        done, number, line = 0, self.number, ""
        try:
            for line in self.lines:  # the hot loop: one pass, no per-line calls of our own
                number += 1
                fields = line.split()
                if not fields:
                    continue
                add_logprob(float(fields[0]))
                if len(fields) == n + 2:
                    add_backoff(float(fields[n + 1]))
                elif len(fields) == n + 1:
                    add_backoff(0.0)
                else:
                    raise IndexError
                if n == 1:
                    names.append(fields[1])
                else:
                    add_ids(map(word_id, fields[1:n + 1]))
                done += 1
                if done == count:
                    break
                if not done & 0xFFFF:
                    self.bar.update(0x10000)
        except (ValueError, IndexError, KeyError) as error:
            self.number = number
            if isinstance(error, KeyError):
                raise self._error(f"word {error} is not among the unigrams") from None
            if isinstance(error, ValueError):
                raise self._error(f"not a number in {line.strip()!r:.80}") from None
            raise self._error(f"expected {count} {n}-grams (log10 prob, {n} words, optional back-off); "
                              f"line {done + 1} of them is {line.strip()!r:.80}") from None
        self.number = number
        self.bar.update(done & 0xFFFF)
        if done < count:
            raise self._error(f"the file ends after {done} of the {count} {n}-grams declared")
        as_arrays = [names] if n == 1 else list(np.frombuffer(ids, dtype=np.int32).reshape(-1, n).T)
        return as_arrays, np.frombuffer(logprob, dtype=np.float32), np.frombuffer(backoff, dtype=np.float32)

    def _keys(self, n: int, ids: list[np.ndarray], keys: list[np.ndarray], vocabulary: int):
        """Order n's sorted keys and the permutation that sorts its lines."""
        rows = ids[0].astype(np.int64)
        for k in range(2, n):  # the row of each line's prefix, one order at a time
            rows = _lookup(keys[k - 1], rows * vocabulary + ids[k - 1])
            missing = np.flatnonzero(rows < 0)
            if len(missing):
                raise ValueError(f"{self.path}: the {n}-gram number {missing[0] + 1} has a {k}-word prefix that "
                                 f"is not an n-gram of the file (ARPA files list every prefix)")
        key = ids[0] if n == 1 else rows * vocabulary + ids[n - 1]
        order = np.argsort(key, kind="stable")
        key = key[order]
        repeated = np.flatnonzero(key[1:] == key[:-1])
        if len(repeated):
            raise ValueError(f"{self.path}: the {n}-gram number {order[repeated[0] + 1] + 1} appears twice")
        return key, order
