"""Decoding with a lexicon and a trigram LM: our HLG + WfstDecoder vs torchaudio's ctc_decoder
(flashlight-text's lexicon beam search with KenLM) on the same emissions, lexicon and ARPA file.

The task (benchmarks/speech_task.py) has a 5,000-word lexicon of real words spelled in
letters, a modified Kneser-Ney trigram estimated by `asr.lm` from 40,000 sentences of a
seeded word-level Markov source, and CTC-like emissions of held-out sentences with letter
confusions, so spelling alone is ambiguous and the LM matters. Both decoders optimize the
same score: emission log-probs plus the LM log-probability (KenLM gives log10, so
flashlight's lm_weight is ln 10), no word bonus. Reported: HLG compile time and size; the
WER and decoding seconds of each decoder at several beams (one torch thread for ours;
flashlight is single-threaded); and, for each flashlight setting, our fastest setting with
equal or better WER and the time ratio. Target: equal or better WER at <= 1x flashlight's time.

python -m benchmarks.decode [--words 5000] [--test 200] [--batch-size 100]
Needs the `bench` extra: pip install -e '.[bench]' (torchaudio, flashlight-text, english-words);
torchaudio's last release needs torch 2.11, so that extra moves torch back to 2.11.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
from pathlib import Path

import torch

from asr.decoding import WfstDecoder
from asr.lang import compile_hlg
from asr.lm import estimate_kneser_ney, grammar_from_arpa, read_arpa, write_arpa
from asr.scoring import score

from .measure import now
from .speech_task import TOKENS, emissions, make_task

OUR_SETTINGS = [(6.0, 200), (8.0, 300), (10.0, 1000), (12.0, 1000), (14.0, 3000), (16.0, 10000)]  # (beam, max_active)
FLASHLIGHT_SETTINGS = [(50, 25.0), (100, 25.0), (500, 50.0), (1000, 100.0)]  # (beam_size, beam_threshold)
SILENCE = "|"  # flashlight needs a silence token; its emission is -1e4, so it is never taken


def word_error_rate(references: list[list[str]], hypotheses: list[list[str]]) -> float:
    as_dict = lambda sentences: {str(i): " ".join(s) for i, s in enumerate(sentences)}  # noqa: E731
    return score(as_dict(references), as_dict(hypotheses)).words.error_rate


def decode_ours(hlg, log_probs, lengths, words, beam, max_active, batch_size) -> tuple[list[list[str]], float]:
    decoder = WfstDecoder(hlg, beam=beam, max_active=max_active)
    hypotheses, start = [], now()
    for first in range(0, len(lengths), batch_size):
        result = decoder(log_probs[first:first + batch_size], lengths[first:first + batch_size])
        hypotheses += [[words[w] for w in ws] for ws in result.words]
    return hypotheses, now() - start


def decode_flashlight(lexicon_path, arpa_path, log_probs, lengths, beam_size, threshold):
    from torchaudio.models.decoder import ctc_decoder

    decoder = ctc_decoder(lexicon=str(lexicon_path), tokens=TOKENS + [SILENCE], lm=str(arpa_path), nbest=1,
                          beam_size=beam_size, beam_threshold=threshold, lm_weight=math.log(10.0), word_score=0.0,
                          sil_score=0.0, unk_word="<unk>", sil_token=SILENCE, blank_token=TOKENS[0])
    with_silence = torch.cat([log_probs, torch.full_like(log_probs[..., :1], -1e4)], dim=-1)
    start = now()
    results = decoder(with_silence, lengths)
    return [list(r[0].words) if r else [] for r in results], now() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=5000, help="lexicon size (default 5000)")
    parser.add_argument("--sentences", type=int, default=40000, help="LM training sentences (default 40000)")
    parser.add_argument("--test", type=int, default=200, help="decoded sentences (default 200)")
    parser.add_argument("--confusion", type=float, default=0.1, help="chance a letter shows as another (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=100, help="utterances per WfstDecoder call (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    task = make_task(args.words, args.sentences, args.test, seed=args.seed)
    work = Path(tempfile.mkdtemp(prefix="decode-bench-"))
    arpa_path, lexicon_path = work / "lm.arpa", work / "lexicon.txt"
    write_arpa(estimate_kneser_ney(task.train_sentences, 3), arpa_path)
    lexicon_path.write_text("".join(f"{w} {' '.join(w)}\n" for w in task.words))

    start = now()
    lm = read_arpa(arpa_path)
    backoff = len(task.words)
    hlg = compile_hlg(len(TOKENS), task.lexicon(), grammar_from_arpa(lm, task.words, backoff_label=backoff),
                      backoff_label=backoff)
    compile_seconds = now() - start
    counts = {n: sum(1 for k in lm.probs if len(k) == n) for n in (1, 2, 3)}
    print(f"task: {len(task.words)} words, trigram LM with {counts[1]:,}/{counts[2]:,}/{counts[3]:,} 1/2/3-grams, "
          f"{args.test} test sentences, letter confusion {args.confusion}")
    print(f"HLG: read ARPA + G + compile {compile_seconds:.1f} s, {hlg.num_nodes:,} nodes, {hlg.num_arcs:,} arcs, "
          f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (target < 60 s)")

    log_probs, lengths = emissions(task.test_sentences, confusion=args.confusion, seed=args.seed + 2)
    references = task.test_sentences
    print(f"{len(references)} utterances, {int(lengths.sum()):,} frames")
    print(f"\n{'decoder':<11} {'setting':<24} {'WER':>7} {'seconds':>8} {'ms/utt':>7}")
    ours = []
    for beam, max_active in OUR_SETTINGS:
        hypotheses, seconds = decode_ours(hlg, log_probs, lengths, task.words, beam, max_active, args.batch_size)
        ours.append((word_error_rate(references, hypotheses), seconds, f"beam {beam:g} max-active {max_active}"))
        print(f"{'ours':<11} {ours[-1][2]:<24} {ours[-1][0]:>7.2%} {seconds:>8.2f} {1e3 * seconds / len(lengths):>7.1f}")
    theirs = []
    for beam_size, threshold in FLASHLIGHT_SETTINGS:
        hypotheses, seconds = decode_flashlight(lexicon_path, arpa_path, log_probs, lengths, beam_size, threshold)
        theirs.append((word_error_rate(references, hypotheses), seconds, f"beam {beam_size} threshold {threshold:g}"))
        print(f"{'flashlight':<11} {theirs[-1][2]:<24} {theirs[-1][0]:>7.2%} {seconds:>8.2f} "
              f"{1e3 * seconds / len(lengths):>7.1f}")

    print("\nfor each flashlight setting, our fastest setting with equal or better WER:")
    verdicts = []
    for wer, seconds, setting in theirs:
        candidates = [o for o in ours if o[0] <= wer]
        if not candidates:
            print(f"  {setting}: none of ours reaches {wer:.2%}")
            verdicts.append(False)
            continue
        best = min(candidates, key=lambda o: o[1])
        ratio = best[1] / seconds
        verdicts.append(ratio <= 1.0)
        print(f"  {setting} ({wer:.2%}, {seconds:.2f} s): ours {best[2]} ({best[0]:.2%}, {best[1]:.2f} s) "
              f"-> time ratio {ratio:.2f}x {'PASS' if ratio <= 1.0 else 'FAIL'}")
    most_accurate = min(range(len(theirs)), key=lambda i: (theirs[i][0], theirs[i][1]))
    print(f"verdict at flashlight's most accurate setting: {'PASS' if verdicts[most_accurate] else 'FAIL'}")


if __name__ == "__main__":
    main()
