"""Contextual biasing on the 5,000-word decoding task (benchmarks/speech_task.py): word error
rates on the hotwords and on the other words, and decoding time, without and with a list of
rare words as hotwords, decoded by the WFST beam search in the same run.

    python -m benchmarks.hotwords [--phrases 100] [--scores 1 2 3] [--test 300] [--confusion 0.15]
        [--runner-up NATS] [--unseen]

Hotwords: the `--phrases` test-set words the LM's training text has the fewest of (ties by
first appearance), the names and terms a user would list. B-WER counts the errors on
reference words in the list (substituted or deleted) plus insertions of listed words, over
the listed words in the references; U-WER the same for every other word (icefall's and the
contextual-biasing literature's split). The targets (issue 16): B-WER down >= 30% relative,
U-WER up <= 0.3 points, decoding time up <= 15%. Needs `pip install english-words` (in the
`bench` extra).

Two settings. By default the hotwords are in the LM (1-20 times in its text): their errors
come from letter confusions, not from the LM, and a bonus barely moves them. With
`--unseen` they are names the LM never saw (its training sentences with them are left out):
without a list the graph lacks them, and the list adds them at <unk>'s probability, as
`asr transcribe --hotwords` does, and biases them; a row without a bonus separates the two.
"""

from __future__ import annotations

import argparse
import collections

import torch

from asr.decoding import ContextGraph, WfstDecoder
from asr.lang import compile_hlg
from asr.lm import estimate_kneser_ney, grammar_from_arpa, with_unseen_words
from asr.scoring import score
from benchmarks.measure import now
from benchmarks.speech_task import TOKENS, emissions, make_task


def split_error_rates(references: list[list[str]], hypotheses: list[list[str]], biased: set[str]) -> tuple[float, float]:
    """(B-WER, U-WER): errors on listed words and on the others, each over its reference count."""
    ids = [str(i) for i in range(len(references))]
    result = score(dict(zip(ids, map(" ".join, references))), dict(zip(ids, map(" ".join, hypotheses))))
    errors, totals = collections.Counter(), collections.Counter()
    for top, bottom in result.alignments.values():
        for ref, hyp in zip(top, bottom):
            word = ref if ref != "***" else hyp
            kind = "b" if word in biased else "u"
            totals[kind] += ref != "***"
            errors[kind] += ref != hyp
    return errors["b"] / max(totals["b"], 1), errors["u"] / max(totals["u"], 1)


def decode(decoder: WfstDecoder, log_probs, lengths, words: list[str], batch_size: int
           ) -> tuple[list[list[str]], float]:
    hypotheses, start = [], now()
    for first in range(0, len(lengths), batch_size):
        result = decoder(log_probs[first:first + batch_size], lengths[first:first + batch_size])
        hypotheses += [[words[w] for w in sentence] for sentence in result.words]
    return hypotheses, now() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotwords", description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=5000)
    parser.add_argument("--sentences", type=int, default=40000, help="LM training sentences")
    parser.add_argument("--test", type=int, default=300, help="decoded sentences")
    parser.add_argument("--phrases", type=int, default=100, help="hotwords: the rarest test words")
    parser.add_argument("--scores", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="bonuses per word to try")
    parser.add_argument("--confusion", type=float, default=0.15, help="chance a letter shows as another")
    parser.add_argument("--runner-up", type=float, default=None,
                        help="softer emissions: a confused letter's true letter scores this many nats below the "
                        "shown one (default: drawn from the noise, about 6 below)")
    parser.add_argument("--unseen", action="store_true",
                        help="the LM never saw the hotwords (their training sentences left out), so without a list "
                        "the graph lacks them; with one they join it at <unk>'s probability, as `asr transcribe "
                        "--hotwords` adds them (an extra row: added with no bonus)")
    parser.add_argument("--beam", type=float, default=16.0)
    parser.add_argument("--max-active", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    task = make_task(args.words, args.sentences, args.test, seed=args.seed)
    counts = collections.Counter(word for sentence in task.train_sentences for word in sentence)
    test_words = list(dict.fromkeys(word for sentence in task.test_sentences for word in sentence))
    hotwords = sorted(test_words, key=lambda word: counts[word])[:args.phrases]  # stable: ties by first use
    index = {word: i for i, word in enumerate(task.words)}
    listed_set = set(hotwords)
    lm_text = [s for s in task.train_sentences if not listed_set & set(s)] if args.unseen else task.train_sentences
    lm = estimate_kneser_ney(lm_text, 3)
    backoff = len(task.words)

    def graph(model):
        return compile_hlg(len(TOKENS), task.lexicon(), grammar_from_arpa(model, task.words, backoff_label=backoff),
                           backoff_label=backoff)

    hlg = graph(lm)
    start = now()
    biased_hlg = graph(with_unseen_words(lm, hotwords)) if args.unseen else hlg
    extension_seconds = now() - start
    log_probs, lengths = emissions(task.test_sentences, confusion=args.confusion, seed=args.seed + 2,
                                 runner_up=args.runner_up)
    listed = sum(word in listed_set for sentence in task.test_sentences for word in sentence)
    print(f"task: {len(task.words)} words, {args.test} test sentences ({sum(map(len, task.test_sentences))} words, "
          f"{listed} of them hotwords), {len(hotwords)} hotwords (training counts "
          f"{counts[hotwords[0]]}-{counts[hotwords[-1]]}), letter confusion {args.confusion}"
          + (f"; unseen by the LM ({len(task.train_sentences) - len(lm_text)} training sentences left out), "
             f"the graph extended with them in {extension_seconds:.1f} s" if args.unseen else ""))
    print(f"{'hotwords':<18} {'B-WER':>7} {'U-WER':>7} {'seconds':>8}")
    plain = WfstDecoder(hlg, args.beam, args.max_active)
    hypotheses, base_seconds = decode(plain, log_probs, lengths, task.words, args.batch_size)
    base_b, base_u = split_error_rates(task.test_sentences, hypotheses, listed_set)
    print(f"{'none':<18} {base_b:>7.2%} {base_u:>7.2%} {base_seconds:>8.2f}")
    if args.unseen:
        hypotheses, seconds = decode(WfstDecoder(biased_hlg, args.beam, args.max_active), log_probs, lengths,
                                     task.words, args.batch_size)
        b, u = split_error_rates(task.test_sentences, hypotheses, listed_set)
        print(f"{'added, no bonus':<18} {b:>7.2%} {u:>7.2%} {seconds:>8.2f}")
    for bonus in args.scores:
        context = ContextGraph.build([[index[word]] for word in hotwords], len(task.words), default_score=bonus)
        biased = WfstDecoder(biased_hlg, args.beam, args.max_active, context=context)
        hypotheses, seconds = decode(biased, log_probs, lengths, task.words, args.batch_size)
        b, u = split_error_rates(task.test_sentences, hypotheses, listed_set)
        verdict = ("PASS" if b <= 0.7 * base_b and u <= base_u + 0.003 and seconds <= 1.15 * base_seconds
                   else "FAIL")
        print(f"{f'score {bonus:g}':<18} {b:>7.2%} {u:>7.2%} {seconds:>8.2f}   B-WER {b / max(base_b, 1e-9) - 1:+.0%}, "
              f"U-WER {100 * (u - base_u):+.2f} points, time {seconds / base_seconds:.2f}x  {verdict}")


if __name__ == "__main__":
    main()
