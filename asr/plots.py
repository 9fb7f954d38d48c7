"""Pictures people would rather look at than read: a forced alignment over the emissions
(`asr align --plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from graphs.io import atomic_open

from .decoding import Hypothesis


def plot_alignment(path: Path, log_probs: torch.Tensor, hypothesis: Hypothesis, tokens: Sequence[str],
                   transcript, frame_seconds: float) -> None:
    """Token posteriors over time (rows: the blank, then the tokens of the path) with the path's
    token at every frame marked and the transcript's words over their spans, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = torch.zeros(log_probs.shape[0], dtype=torch.long)
    for token, first, last in hypothesis.tokens:
        labels[first:last + 1] = token
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
