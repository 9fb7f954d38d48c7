"""Training losses: one training step of `asr train`'s default model with each built-in loss,
against CTC on the same batch in the same run.

    python -m benchmarks.losses [--repeat 5] [--warmup 2] [--batch 40] [--seconds 3.0] [--threads N]

The batch is AN4-like: `--batch` utterances of `--seconds` of 80-bin features each (random,
seeded), transcripts drawn from AN4-style words (spelled letters, digits, commands). A step is
what the trainer does for one batch: the default conformer (6 x 144) forward, the loss, and
backward through both. Each loss gets the tokens it trains with: characters (as `asr train`
makes them, letter words included) for ctc, crctc, mmi, mmi + CTC, asg and the example
minimum-duration CTC; sentencepiece pieces (`--pieces`) for wordpiece, timed against CTC over
the same pieces.

Reported per loss: the median step and loss-only seconds over --repeat runs after --warmup
(losses interleaved run by run, so load on the machine hits all alike), the ratio to CTC's step
(the cost per epoch, which is what the issue's 1.5x target bounds) and the peak memory of one
step, measured in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.measure import fmt_bytes, measure_in_subprocess, now, peak_rss_increase, report_measurement

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "custom_graph_loss.py") + ":factory"
LOSSES = {  # name shown: (loss spec, tokens)
    "ctc": ("ctc", "char"),
    "crctc": ("crctc", "char"),
    "mmi": ("mmi", "char"),
    "mmi + ctc": ({"name": "mmi", "ctc_scale": 1.0}, "char"),
    "asg": ("asg", "char"),
    "min-duration CTC (example)": (EXAMPLE, "char"),
    "ctc (pieces)": ("ctc", "pieces"),
    "wordpiece": ("wordpiece", "pieces"),
}
WORDS = ("ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE ZERO OH TEN TWENTY THIRTY HUNDRED ENTER ERASE "
         "RUBOUT STOP GO YES NO START HELP REPEAT JANUARY MARCH OCTOBER FIFTEENTH NINETEEN EIGHTY "
         "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z").split()


def transcripts(count: int, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (count,), generator=generator)
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (int(n),), generator=generator)) for n in lengths]


class Case:
    """The batch, the model and the loss of one row, ready to step."""

    def __init__(self, name: str, args, folder: Path):
        from asr.losses import make_loss
        from asr.model import TransformerEncoder
        from asr.tokenizer import BPETokenizer, CharTokenizer
        from asr.train.trainer import _ModelWithLoss
        from asr.training import DEFAULT_TRAINING

        spec, kind = LOSSES[name]
        texts = transcripts(args.batch, args.seed)
        training_texts = transcripts(2000, args.seed + 1)
        if kind == "char":
            tokenizer = CharTokenizer.build(training_texts)
        else:
            tokenizer = BPETokenizer.train(iter(training_texts), args.pieces, folder / "pieces")
        torch.manual_seed(args.seed)
        model = TransformerEncoder(DEFAULT_TRAINING.model.with_vocab(tokenizer.vocab_size))
        loss = make_loss(spec, tokenizer, training_texts)
        self.task = _ModelWithLoss(model, loss, None).train()
        frames = int(args.seconds * 100)
        generator = torch.Generator().manual_seed(args.seed)
        self.features = torch.randn(args.batch, frames, 80, generator=generator)
        self.feature_lengths = torch.full((args.batch,), frames)
        encoded = [torch.tensor(tokenizer.encode(text)) for text in texts]
        self.tokens = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True)
        self.token_lengths = torch.tensor([len(e) for e in encoded])

    def step(self) -> tuple[float, float]:
        """Seconds of one whole step and of the loss's forward and backward within it."""
        self.task.zero_grad(set_to_none=True)
        with torch.no_grad():
            log_probs, lengths = self.task.model(self.features, self.feature_lengths)
        log_probs.requires_grad_(True)
        start = now()
        self.task.loss_fn(log_probs, self.tokens, lengths, self.token_lengths).backward()
        loss_seconds = now() - start
        start = now()
        loss, _, _ = self.task(self.features, self.feature_lengths, self.tokens, self.token_lengths)
        loss.backward()
        return now() - start, loss_seconds


def measure_main(args) -> None:
    """Hidden mode: the peak memory of one step of `args.measure`, in this fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        case = Case(args.measure, args, Path(folder))
        case.step()
        report_measurement(peak_rss_increase(case.step))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=40, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of audio per utterance")
    parser.add_argument("--pieces", type=int, default=100, help="sentencepiece vocabulary for wordpiece")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        return measure_main(args)
    print(f"one training step: batch {args.batch} x {args.seconds} s, default conformer, "
          f"{torch.get_num_threads()} threads, median of {args.repeat}")
    times = {name: ([], []) for name in LOSSES}
    with tempfile.TemporaryDirectory() as folder:
        cases = {name: Case(name, args, Path(folder)) for name in LOSSES}
        for run in range(args.warmup + args.repeat):
            for name, case in cases.items():
                step, loss = case.step()
                if run >= args.warmup:
                    times[name][0].append(step)
                    times[name][1].append(loss)
    step = {name: statistics.median(t[0]) for name, t in times.items()}
    print(f"{'loss':<28} {'step s':>8} {'loss s':>8} {'vs CTC':>7} {'peak memory':>12}")
    for name in LOSSES:
        baseline = step["ctc (pieces)" if LOSSES[name][1] == "pieces" else "ctc"]
        memory = "-"
        if not args.no_memory:
            extra = ["--batch", str(args.batch), "--seconds", str(args.seconds), "--pieces", str(args.pieces),
                     "--seed", str(args.seed), "--threads", str(args.threads)]
            result = measure_in_subprocess("benchmarks.losses", ["--measure", name, *extra], timeout=600)
            memory = fmt_bytes(result["peak_bytes"]) if "peak_bytes" in result else result.get("why", "failed")
        print(f"{name:<28} {step[name]:8.3f} {statistics.median(times[name][1]):8.3f} "
              f"{step[name] / baseline:7.2f} {memory:>12}")


if __name__ == "__main__":
    sys.exit(main())
