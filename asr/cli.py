"""The `asr` command line. Each subcommand lives in a function `_cmd_<name>`, registered in `_parser`."""

from __future__ import annotations

import argparse
import json
import sys

from . import scoring


def _cmd_score(args) -> int:
    references = scoring.read_kaldi_text(args.ref)
    hypotheses = scoring.read_kaldi_text(args.hyp)
    result = scoring.score(references, hypotheses)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    if args.details:
        for utterance, (ref, hyp) in result.alignments.items():
            widths = [max(len(a), len(b)) for a, b in zip(ref, hyp)]
            print(f"{utterance}\n  REF: {' '.join(a.ljust(w) for a, w in zip(ref, widths))}"
                  f"\n  HYP: {' '.join(b.ljust(w) for b, w in zip(hyp, widths))}")
    print(result.words.kaldi_line("WER"))
    print(result.chars.kaldi_line("CER"))
    print(result.words.table("Wrd"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Speech recognition with differentiable WFSTs. Run `asr COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    score = commands.add_parser(
        "score", help="word/character error rates of hypotheses against references",
        description="Compare two Kaldi `text` files (`utt-id word word ...` per line) utterance by utterance "
                    "and print %%WER and %%CER in Kaldi's format plus an sclite-style summary "
                    "(Snt Wrd Corr Sub Del Ins Err S.Err, in %% of reference words).",
        epilog="example: asr score data/test/text exp/decode/text --details",
    )
    score.add_argument("ref", help="reference transcripts (Kaldi text)")
    score.add_argument("hyp", help="hypothesis transcripts (Kaldi text); missing utterances count as empty")
    score.add_argument("--details", action="store_true", help="print every utterance's alignment (*** marks a gap)")
    score.add_argument("--json", action="store_true", help="print the counts as JSON instead")
    score.set_defaults(run=_cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as error:
        print(f"asr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
