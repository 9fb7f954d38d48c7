"""Which words of a long recording's known transcript each decoded segment holds, so that
forced alignment runs segment by segment (its lattice the size of a segment, not of the
file): the words the recognizer got right anchor the transcript to segments, and the words
between two anchors go to the segments in between in proportion (as long-audio aligners
anchor on recognized words, e.g. SAIL's and Gentle's). Where words missed by the recognizer
could belong to either side of a segment border, the split records how far the border may
move, for the aligner to settle by the acoustics."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Sequence

import numpy as np


@dataclasses.dataclass
class TranscriptSplit:
    """Segment k holds the reference words cuts[k] to cuts[k + 1] - 1; border k (before
    segment k) may lie anywhere from lowest[k] to highest[k] without moving an anchored word
    to another segment."""

    cuts: np.ndarray
    lowest: np.ndarray
    highest: np.ndarray

    def parts(self, reference: Sequence[str]) -> list[list[str]]:
        return [list(reference[a:b]) for a, b in zip(self.cuts[:-1], self.cuts[1:])]


def split_transcript(reference: Sequence[str], recognized: Sequence[Sequence[str]]) -> TranscriptSplit | None:
    """`reference` cut into one run of words per segment (in order, every word once), given
    the words `recognized` in each segment. A reference word matched to a recognized word
    goes to that word's segment; the words between two matches are spread linearly over the
    recognized words between them (each to the segment of the nearest); words before the
    first match or after the last lean on the first or last recognized word. None when
    nothing was recognized (there is nothing to anchor to)."""
    owners = np.array([k for k, words in enumerate(recognized) for _ in words], dtype=np.int64)
    if not len(owners):
        return None
    flat = [word for words in recognized for word in words]
    matcher = difflib.SequenceMatcher(None, list(reference), flat, autojunk=False)
    matched = np.array([(i + k, j + k) for i, j, size in matcher.get_matching_blocks() for k in range(size)],
                       dtype=np.int64).reshape(-1, 2)
    # Virtual anchors before the first and after the last words keep the interpolation in range.
    anchors = np.concatenate([[[-1, -1]], matched, [[len(reference), len(flat)]]]).astype(np.float64)
    position = np.interp(np.arange(len(reference)), anchors[:, 0], anchors[:, 1])
    segment = owners[np.clip(np.floor(position + 0.5), 0, len(flat) - 1).astype(np.int64)]  # the nearest word
    borders = np.arange(len(recognized) + 1)
    cuts = np.searchsorted(segment, borders)  # segment is non-decreasing
    cuts[-1] = len(reference)
    anchored_segment = owners[matched[:, 1]]
    before = np.searchsorted(anchored_segment, borders)  # anchored words in segments before each border
    lowest = np.where(before > 0, matched[np.maximum(before - 1, 0), 0] + 1, 0)
    highest = np.where(before < len(matched), matched[np.minimum(before, len(matched) - 1), 0], len(reference))
    lowest[0], highest[0], lowest[-1], highest[-1] = 0, 0, len(reference), len(reference)
    return TranscriptSplit(cuts, lowest, highest)
