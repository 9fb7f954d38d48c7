"""Forced alignment of known transcripts: word and token times of audio files, and a picture
of the emissions with the path taken (`asr align --plot`).

Words are spelled with the model directory's lexicon (or its tokenizer); a word without a
spelling becomes `<unk>` with a warning when the lexicon has `<unk>`, and otherwise makes the
file fail (reported and skipped, like an unreadable file). A transcript that cannot fit the
audio (more tokens than frames) fails the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from .decode import force_align
from .files import atomic_open
from .lm import UNK
from .model_dir import ModelDir
from .transcribe import Recognizer, Transcript

log = logging.getLogger("asr.align")


@dataclasses.dataclass
class TokenSpan:
    token: str
    start: float
    end: float


class Aligner(Recognizer):
    """Aligns each input file with `texts[utterance id]` (a list of words); `plot_dir`, when
    given, receives ID.png per file."""

    def __init__(self, saved: ModelDir, texts: Mapping[str, Sequence[str]], device: str = "cpu",
                 plot_dir: str | Path | None = None):
        super().__init__(saved, device)
        self.texts = texts
        self.plot_dir = Path(plot_dir) if plot_dir else None
        self.token_spans: dict[str, list[TokenSpan]] = {}

    def _spell(self, transcript: Transcript) -> list[list[list[int]]] | None:
        if transcript.id not in self.texts:
            transcript.error = "no transcript for this utterance id"
            return None
        spellings = self.graph.spellings
        words = []
        for word in self.texts[transcript.id]:
            if word in spellings:
                words.append(word)
            elif UNK in spellings:
                log.warning("%s: %r is not in the lexicon, aligned as %s", transcript.id, word, UNK)
                words.append(UNK)
            else:
                transcript.error = f"word {word!r} is not in the lexicon (and it has no {UNK})"
                return None
        transcript.words = words
        return [spellings[w] for w in words]

    def _fill(self, transcripts: list[Transcript], log_probs: torch.Tensor, lengths: torch.Tensor) -> None:
        spelled = [self._spell(t) for t in transcripts]
        keep = [i for i, s in enumerate(spelled) if s is not None]
        if not keep:
            return
        log_probs, lengths = log_probs[keep], lengths[keep]
        spans, alignment = force_align(log_probs, lengths, [spelled[i] for i in keep])
        step = self.saved.frame_seconds
        for row, i in enumerate(keep):
            transcript = transcripts[i]
            if alignment.score[row] == float("-inf"):
                transcript.error = f"the transcript ({len(transcript.words)} words) does not fit the audio"
                continue
            self._set_words(transcript, transcript.words, spans[row])
            labels = alignment.labels[row, : int(lengths[row])]
            tokens = [TokenSpan(self.saved.tokens[token], round(first * step, 3), round((last + 1) * step, 3))
                      for token, first, last in _runs(labels.tolist())]
            self.token_spans[transcript.id] = tokens
            if self.plot_dir:
                plot_alignment(self.plot_dir / f"{transcript.id}.png", log_probs[row, : int(lengths[row])], labels,
                               self.saved.tokens, transcript, step)


def _runs(labels: list[int], blank: int = 0) -> list[tuple[int, int, int]]:
    """(token, first frame, last frame) of each run of one non-blank label."""
    runs = []
    for frame, label in enumerate(labels):
        if label == blank:
            continue
        if runs and runs[-1][0] == label and runs[-1][2] == frame - 1:
            runs[-1] = (label, runs[-1][1], frame)
        else:
            runs.append((label, frame, frame))
    return runs


def plot_alignment(path: Path, log_probs: torch.Tensor, labels: torch.Tensor, tokens: Sequence[str],
                   transcript: Transcript, frame_seconds: float) -> None:
    """Token posteriors over time (rows: tokens that occur in the path, then the blank) with the
    aligned token of every frame marked and the words' spans on top, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [0] + sorted({int(t) for t in labels.tolist()} - {0})
    row_of = {token: row for row, token in enumerate(shown)}
    posteriors = log_probs[:, shown].exp().T.numpy()
    frames = posteriors.shape[1]
    seconds = frames * frame_seconds
    figure, axis = plt.subplots(figsize=(max(6.0, min(24.0, frames / 12)), 1.5 + 0.28 * len(shown)))
    axis.imshow(posteriors, aspect="auto", origin="lower", cmap="Blues", vmin=0, vmax=1,
                extent=(0, seconds, -0.5, len(shown) - 0.5), interpolation="nearest")
    times = (torch.arange(frames) + 0.5) * frame_seconds
    axis.plot(times.numpy(), [row_of[int(t)] for t in labels.tolist()], color="tab:red", linewidth=1.2,
              marker=".", markersize=3, label="alignment")
    axis.set_yticks(range(len(shown)), [tokens[t] for t in shown])
    axis.set_xlabel("seconds")
    for word, start, end in zip(transcript.words, transcript.starts, transcript.ends):
        axis.axvspan(start, end, color="tab:orange", alpha=0.12)
        axis.text((start + end) / 2, len(shown) - 0.4, word, ha="center", va="bottom", fontsize=9)
    axis.set_title(f"{transcript.id}: {transcript.text}", fontsize=10, pad=16)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    plt.close(figure)
