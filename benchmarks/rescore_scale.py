"""Rescoring LMs at LibriSpeech scale: time and peak memory of reading a 4-gram ARPA the size
of LibriSpeech's `4-gram.arpa.gz` into an `asr.arpa_table.ArpaTable` (what `--rescore-lm`
and the recipes' `--rescore` read), of loading its saved .npz, and of scoring sentences with
it; at a reduced size also `read_arpa`'s dict (`NgramLM`), the peer it replaces for large
models, with the ratio of their peak memory.

    python -m benchmarks.rescore_scale [--words 200000] [--counts 40000000 50000000 40000000]
        [--dict] [--seed 0] [--keep DIR]

The ARPA file is benchmarks/hlg_scale's synthetic one (Zipf histories, each n-gram extending
an existing shorter one, seeded) with `--counts` bigrams, trigrams and 4-grams. The default
counts are an estimate of the published 4-gram's (about 130 million n-grams in 1.3 GB of
gzipped text, at the 10 bytes an n-gram its pruned trigram takes); every stage runs in a
fresh subprocess that reports its own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks.hlg_scale import write_arpa
from benchmarks.measure import fmt_bytes, measure_in_subprocess, own_peak_bytes, report_measurement, work_folder

SENTENCES = 2000  # scored per stage, 20 words each


def measure_main(args) -> None:
    """Hidden mode: one stage in this fresh process, its seconds and peak RSS printed."""
    from asr.arpa_table import ArpaTable
    from asr.lm import BOS, EOS, read_arpa

    if args.measure == "imports":
        return report_measurement({"imports": 0.0, "peak_bytes": own_peak_bytes()})
    start = time.perf_counter()
    if args.measure == "dict":
        lm = read_arpa(args.arpa)
    elif args.measure == "table":
        lm = ArpaTable.read(args.arpa)
        lm.save(args.npz)
    else:
        lm = ArpaTable.load(args.npz)
    result = {args.measure: time.perf_counter() - start}
    rng = np.random.default_rng(0)
    words = lm.words() if args.measure == "dict" else [w for w in lm.words if w not in (BOS, EOS)]  # the same list
    sentences = [[words[i] for i in rng.integers(0, len(words), size=20)] for _ in range(SENTENCES)]
    start = time.perf_counter()
    result["checksum"] = sum(lm.sentence_log10_prob(s) for s in sentences)
    result["ms_per_sentence"] = (time.perf_counter() - start) / SENTENCES * 1000
    report_measurement({**result, "peak_bytes": own_peak_bytes()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=200_000)
    parser.add_argument("--counts", type=int, nargs="+", default=[40_000_000, 50_000_000, 40_000_000],
                        help="bigrams, trigrams, 4-grams, ...")
    parser.add_argument("--dict", action="store_true", help="also measure read_arpa's dict (small sizes only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="write the ARPA and .npz files here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--measure", choices=("imports", "dict", "table", "load"), help=argparse.SUPPRESS)
    parser.add_argument("--arpa", help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return measure_main(args)
    with work_folder(args.keep) as folder:
        arpa, npz = folder / "synthetic.arpa", folder / "synthetic.npz"
        start = time.perf_counter()
        write_arpa(arpa, args.words, args.counts, args.seed)
        total = args.words + 2 + sum(args.counts)
        print(f"synthetic ARPA: {args.words:,} words, {' + '.join(f'{c:,}' for c in args.counts)} longer n-grams "
              f"({total:,} in all), {arpa.stat().st_size / 2**20:,.0f} MiB, written in {time.perf_counter() - start:.0f} s")
        peaks = {}
        for stage in ("imports", "table", "load", "dict") if args.dict else ("imports", "table", "load"):
            result = measure_in_subprocess("benchmarks.rescore_scale",
                                           ["--measure", stage, "--arpa", str(arpa), "--npz", str(npz)],
                                           timeout=args.timeout)
            if "peak_bytes" not in result:
                print(f"{stage}: {result.get('why', 'failed')}")
                continue
            peaks[stage] = result["peak_bytes"]
            if stage == "imports":
                print(f"imports alone (torch, asr): process peak RSS {fmt_bytes(result['peak_bytes'])}")
                continue
            per_ngram = (result["peak_bytes"] - peaks["imports"]) / total
            print(f"{stage}: {result[stage]:,.1f} s, {result['ms_per_sentence']:.2f} ms a 20-word sentence, "
                  f"process peak RSS {fmt_bytes(result['peak_bytes'])} ({per_ngram:,.0f} bytes an n-gram "
                  f"above the imports), sentence log10 total {result['checksum']:.3f}")
            print(json.dumps({"stage": stage, **result}), file=sys.stderr)
        if {"dict", "table", "load"} <= set(peaks):
            print("peak RSS above the imports, dict / table: "
                  + ", ".join(f"{(peaks['dict'] - peaks['imports']) / (peaks[stage] - peaks['imports']):.1f}x {what}"
                              for stage, what in (("table", "reading"), ("load", "loaded"))))


if __name__ == "__main__":
    sys.exit(main())
