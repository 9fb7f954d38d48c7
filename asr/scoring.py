"""Word and character error rates with the sclite/Kaldi summary (Snt Wrd Corr Sub Del Ins Err S.Err).

Transcripts are compared per utterance id; alignment counts come from jiwer
(rapidfuzz edit distance). Kaldi `text` files (`utt-id word word ...`) are read
with errors that name the file and line.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import jiwer

from .data import read_manifest


@dataclasses.dataclass
class ErrorCounts:
    """Totals over a test set for one unit (words or characters)."""

    sentences: int = 0
    reference_units: int = 0
    correct: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    sentence_errors: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def error_rate(self) -> float:
        """(S + D + I) / N as a fraction; 0 for an empty reference with no insertions."""
        if self.reference_units == 0:
            return 0.0 if self.insertions == 0 else float("inf")
        return self.errors / self.reference_units

    def kaldi_line(self, name: str = "WER") -> str:
        """Kaldi compute-wer's line, e.g. `%WER 12.50 [ 3 / 24, 1 ins, 1 del, 1 sub ]`."""
        return (f"%{name} {100 * self.error_rate:.2f} [ {self.errors} / {self.reference_units}, "
                f"{self.insertions} ins, {self.deletions} del, {self.substitutions} sub ]")

    def table(self, unit: str = "Wrd") -> str:
        """sclite-style summary with percentages of the reference count."""
        n = max(self.reference_units, 1)
        cells = [("Snt", str(self.sentences)), (unit, str(self.reference_units))]
        for label, value in (("Corr", self.correct), ("Sub", self.substitutions), ("Del", self.deletions),
                             ("Ins", self.insertions), ("Err", self.errors)):
            cells.append((label, f"{100 * value / n:.1f}"))
        cells.append(("S.Err", f"{100 * self.sentence_errors / max(self.sentences, 1):.1f}"))
        widths = [max(len(a), len(b)) for a, b in cells]
        header = " | ".join(a.rjust(w) for (a, _), w in zip(cells, widths))
        values = " | ".join(b.rjust(w) for (_, b), w in zip(cells, widths))
        return f"| {header} |\n| {values} |"


@dataclasses.dataclass
class Score:
    words: ErrorCounts
    chars: ErrorCounts
    alignments: dict  # utterance id -> (reference, hypothesis) word lists with "***" gaps

    def as_dict(self) -> dict:
        return {"wer": self.words.error_rate, "cer": self.chars.error_rate,
                "words": dataclasses.asdict(self.words), "chars": dataclasses.asdict(self.chars)}


def _counts(output, references: list[str], hypotheses: list[str], units) -> ErrorCounts:
    sentence_errors = sum(units(r) != units(h) for r, h in zip(references, hypotheses))
    return ErrorCounts(
        sentences=len(references),
        reference_units=sum(len(units(r)) for r in references),
        correct=output.hits, substitutions=output.substitutions, deletions=output.deletions,
        insertions=output.insertions, sentence_errors=sentence_errors,
    )


def score(references: dict[str, str], hypotheses: dict[str, str]) -> Score:
    """Score hypotheses against references by utterance id. A reference without a hypothesis
    counts as an empty hypothesis (with a warning); a hypothesis without a reference is an error."""
    extra = sorted(set(hypotheses) - set(references))
    if extra:
        raise ValueError(f"{len(extra)} hypotheses have no reference, e.g. {extra[:3]}")
    missing = sorted(set(references) - set(hypotheses))
    if missing:
        warnings.warn(f"{len(missing)} utterances have no hypothesis (scored as empty), e.g. {missing[:3]}",
                      stacklevel=2)
    ids = sorted(references)
    refs = [" ".join(references[i].split()) for i in ids]
    hyps = [" ".join(hypotheses.get(i, "").split()) for i in ids]
    # jiwer refuses empty references; empty pairs contribute nothing but their insertions.
    words = _process(jiwer.process_words, refs, hyps, str.split)
    chars = _process(jiwer.process_characters, refs, hyps, list)
    return Score(words[0], chars[0], dict(zip(ids, words[1])))


def _process(process, refs, hyps, units):
    counts = ErrorCounts(sentences=len(refs))
    alignments = [None] * len(refs)
    scored = [i for i, r in enumerate(refs) if r]
    if scored:
        output = process([refs[i] for i in scored], [hyps[i] for i in scored])
        counts = _counts(output, [refs[i] for i in scored], [hyps[i] for i in scored], units)
        counts.sentences = len(refs)
        for i, chunks in zip(scored, output.alignments):
            alignments[i] = _aligned(units(refs[i]), units(hyps[i]), chunks)
    for i, ref in enumerate(refs):
        if not ref:  # empty reference: every hypothesis unit is an insertion
            inserted = len(units(hyps[i]))
            counts.insertions += inserted
            counts.sentence_errors += inserted > 0
            alignments[i] = (["***"] * inserted, units(hyps[i]))
    return counts, alignments


def _aligned(ref: list[str], hyp: list[str], chunks) -> tuple[list[str], list[str]]:
    """Reference and hypothesis padded with *** where one side has nothing."""
    top, bottom = [], []
    for c in chunks:
        r, h = ref[c.ref_start_idx:c.ref_end_idx], hyp[c.hyp_start_idx:c.hyp_end_idx]
        top += r + ["***"] * (len(h) - len(r))
        bottom += h + ["***"] * (len(r) - len(h))
    return top, bottom


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Utterance id -> transcript from a JSONL manifest (`.jsonl`, its `text` fields) or a Kaldi
    `text` file, so the manifest a recognizer decoded can be its reference."""
    if str(path).endswith(".jsonl"):
        return {u.id: u.text for u in read_manifest(path)}
    return read_kaldi_text(path)


def read_kaldi_text(path: str | Path) -> dict[str, str]:
    """A Kaldi `text` file: `utt-id word word ...` per line (an id alone is an empty transcript)."""
    transcripts: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            utterance = fields[0]
            if utterance in transcripts:
                raise ValueError(f"{path}, line {number}: utterance id {utterance!r} appears twice")
            transcripts[utterance] = fields[1].strip() if len(fields) > 1 else ""
    return transcripts
