"""HLG compilation at LibriSpeech scale: time and peak memory of `asr.lang.build_hlg` for a
lexicon and a trigram LM the size of LibriSpeech's `3-gram.pruned.1e-7` (200,000 words and
a few million bigrams and trigrams), both synthetic and seeded, so no download is needed.

    python -m benchmarks.hlg_scale [--words 200000] [--bigrams 1500000] [--trigrams 1800000]
        [--seed 0] [--keep DIR]

The ARPA file: `--words` random letter strings (3-12 letters) with Zipf unigram
probabilities; bigrams and trigrams drawn (without repeats) with Zipf-distributed histories,
each trigram extending an existing bigram, so the back-off structure is that of a pruned
model; log-probabilities and back-off weights random in plausible ranges (the graph's size
and the algorithms' work do not depend on their values). The lexicon spells each word in
its letters. Each stage runs in a fresh subprocess that reports its own peak RSS: reading
the ARPA, then the whole `build_hlg` (L o G, determinize, minimize, H o LG, as `asr train`
and `asr compile-graph` do).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from benchmarks.measure import fmt_bytes, measure_in_subprocess, own_peak_bytes, report_measurement, work_folder

LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def random_words(count: int, rng: np.random.Generator) -> list[str]:
    """`count` distinct lower-case letter strings of 3-12 letters."""
    words: set[str] = set()
    while len(words) < count:
        lengths = rng.integers(3, 13, size=count)
        letters = rng.choice(LETTERS, size=(count, 12))
        words.update("".join(row[:n]) for row, n in zip(letters, lengths))
    return sorted(words)[:count]


def _distinct_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Rows (first, second) without repeats, in first-seen order."""
    pairs = np.stack([first, second], axis=1)
    _, keep = np.unique(pairs, axis=0, return_index=True)
    return pairs[np.sort(keep)]


def write_arpa(path: Path, num_words: int, counts: Sequence[int], seed: int) -> list[str]:
    """The synthetic ARPA described in the module docstring, with `counts[0]` bigrams,
    `counts[1]` trigrams and so on; returns its words."""
    rng = np.random.default_rng(seed)
    words = random_words(num_words, rng)
    vocabulary = np.array(["<s>", "</s>", *words])
    zipf = 1.0 / np.arange(1, num_words + 1)
    zipf /= zipf.sum()
    history = rng.choice(num_words, size=int(counts[0] * 1.3), p=zipf) + 2
    orders = [np.arange(len(vocabulary)).reshape(-1, 1),
              _distinct_pairs(history, rng.integers(1, num_words + 2, size=history.size))[:counts[0]]]
    extended = [np.ones(len(vocabulary), dtype=bool)]  # whether an n-gram is the prefix of a longer one
    for count in counts[1:]:  # each n-gram extends an existing (n-1)-gram by a word
        prefix = rng.choice(len(orders[-1]), size=int(count * 1.3))
        longer = np.concatenate([orders[-1][prefix], rng.integers(1, num_words + 2, size=(len(prefix), 1))], axis=1)
        longer, first = np.unique(longer, axis=0, return_index=True)
        extended.append(np.zeros(len(orders[-1]), dtype=bool))
        extended[-1][prefix[first[:count]]] = True
        orders.append(longer[:count])

    def lines(columns: np.ndarray, backoff: np.ndarray | None) -> Iterator[str]:
        """The n-gram lines of `columns`, a million at a time (the text of 50M at once is ~10 GB)."""
        probs = rng.uniform(-6.0, -0.5, size=len(columns))
        weights = rng.uniform(-1.5, 0.0, size=len(columns)) if backoff is not None else None
        for start in range(0, len(columns), 1_000_000):
            part = slice(start, start + 1_000_000)
            text = [f"{p:.4f}\t{' '.join(vocabulary[row])}" for p, row in zip(probs[part], columns[part])]
            if backoff is not None:
                text = [f"{t}\t{w:.4f}" if b else t for t, w, b in zip(text, weights[part], backoff[part])]
            yield "\n".join(text) + "\n"

    with open(path, "w", encoding="utf-8") as out:
        out.write("\\data\\\n" + "".join(f"ngram {n}={len(rows)}\n" for n, rows in enumerate(orders, 1)))
        for n, rows in enumerate(orders, 1):
            out.write(f"\n\\{n}-grams:\n")
            out.writelines(lines(rows, extended[n - 1] if n < len(orders) else None))
        out.write("\n\\end\\\n")
    return words


def measure_main(args) -> None:
    """Hidden mode: one stage in this fresh process, its seconds and peak RSS printed."""
    from asr.lang import build_hlg
    from asr.lm import read_arpa

    start = time.perf_counter()
    lm = read_arpa(args.arpa)
    seconds = {"read_arpa": time.perf_counter() - start}
    if args.measure == "hlg":
        words = lm.words()
        tokens = ["<blk>", *LETTERS.tolist()]
        start = time.perf_counter()
        graph = build_hlg(tokens, {w: [list(w)] for w in words}, lm)
        seconds["build_hlg"] = time.perf_counter() - start
        seconds["arcs"], seconds["nodes"] = graph.graph.num_arcs, graph.graph.num_nodes
    report_measurement({**seconds, "peak_bytes": own_peak_bytes()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=200_000)
    parser.add_argument("--bigrams", type=int, default=1_500_000)
    parser.add_argument("--trigrams", type=int, default=1_800_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the ARPA file here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--measure", choices=("read", "hlg"), help=argparse.SUPPRESS)
    parser.add_argument("--arpa", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return measure_main(args)
    with work_folder(args.keep) as folder:
        arpa = folder / "synthetic.arpa"
        start = time.perf_counter()
        write_arpa(arpa, args.words, [args.bigrams, args.trigrams], args.seed)
        print(f"synthetic ARPA: {args.words:,} words, {args.bigrams:,} bigrams, {args.trigrams:,} trigrams, "
              f"{arpa.stat().st_size / 2**20:.0f} MiB, written in {time.perf_counter() - start:.0f} s")
        for stage in ("read", "hlg"):
            result = measure_in_subprocess("benchmarks.hlg_scale", ["--measure", stage, "--arpa", str(arpa)],
                                           timeout=args.timeout)
            if "peak_bytes" not in result:
                print(f"{stage}: {result.get('why', 'failed')}")
                continue
            timing = ", ".join(f"{k} {v:,.1f} s" if isinstance(v, float) else f"{k} {v:,}" for k, v in result.items()
                               if k != "peak_bytes")
            print(f"{stage}: {timing}, process peak RSS {fmt_bytes(result['peak_bytes'])}")
            print(json.dumps({"stage": stage, **result}), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
