"""What every search returns, and the protocol every search follows.

A decoder is called as `decoder(log_probs, lengths) -> list[Hypothesis]` on a batch of
emissions [B, T, V] (utterance b uses its first lengths[b] frames), one hypothesis per
utterance. Times are encoder frames; `asr.transcribe` turns them into seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol, Sequence

import torch

import graphs

NEG_INF = float("-inf")


@dataclasses.dataclass
class Hypothesis:
    """One utterance's result: `words` with the (first, last) frame of each in `spans`,
    `tokens` as (token id, first frame, last frame) runs of the path's non-blank labels,
    `score` (-inf when no path fits the utterance: then there are no words) and, when the
    search keeps them, `alternatives`: the n best (words, score) pairs, best first."""

    words: list[str]
    spans: list[tuple[int, int]]
    tokens: list[tuple[int, int, int]]
    score: float
    alternatives: list[tuple[list[str], float]] = dataclasses.field(default_factory=list)

    @property
    def found(self) -> bool:
        """Whether a path fits the utterance (a forced alignment may not)."""
        return self.score != NEG_INF


class Decoder(Protocol):
    """Emissions in, one `Hypothesis` per utterance out."""

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]: ...


def token_runs(labels: Sequence[int], blank: int = 0) -> list[tuple[int, int, int]]:
    """(token, first frame, last frame) of each run of one non-blank label in a frame path."""
    runs: list[tuple[int, int, int]] = []
    for frame, label in enumerate(labels):
        if label == blank:
            continue
        if runs and runs[-1][0] == label and runs[-1][2] == frame - 1:
            runs[-1] = (label, runs[-1][1], frame)
        else:
            runs.append((label, frame, frame))
    return runs


def hypotheses_from_path(words: Sequence[Sequence[str]], spans: Sequence[Sequence[tuple[int, int]]],
                         alignment: graphs.DenseAlignment, lengths: torch.Tensor,
                         runs: Callable[[Sequence[int]], list[tuple[int, int, int]]] = token_runs) -> list[Hypothesis]:
    """Hypotheses of words found on (or aligned to) the best paths of `alignment`, their
    tokens read from the frame labels by `runs` (a topology's `token_runs`; default CTC's);
    an utterance without a path gets no words and score -inf."""
    result = []
    for b, length in enumerate(torch.as_tensor(lengths).tolist()):
        score = float(alignment.score[b])
        if score == NEG_INF:
            result.append(Hypothesis([], [], [], NEG_INF))
            continue
        labels = alignment.labels[b, :length].tolist()
        result.append(Hypothesis(list(words[b]), list(spans[b]), runs(labels), score))
    return result
