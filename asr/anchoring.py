"""Which words of a long recording's known transcript each decoded segment holds, so that
forced alignment runs segment by segment (its lattice the size of a segment, not of the
file): the words the recognizer got right anchor the transcript to segments, and the words
between two anchors go to the segments in between in proportion (as long-audio aligners
anchor on recognized words, e.g. SAIL's and Gentle's). Where words missed by the recognizer
could belong to either side of a segment border, or a word was heard on both sides of it
(a model may spike for a word cut in two on each side of the cut), the split records how far
the border may move, for the aligner to settle by the acoustics."""

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
    first match or after the last lean on the first or last recognized word. A match whose
    word was also heard, unmatched, just across a segment border does not fix that border.
    None when nothing was recognized (there is nothing to anchor to)."""
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
    firm = matched[~_heard_across_border(flat, owners, matched[:, 1])]
    before = np.searchsorted(owners[firm[:, 1]], borders)  # firmly anchored words in segments before each border
    fixed = np.concatenate([[-1], firm[:, 0], [len(reference)]])  # their reference words, between virtual ones
    lowest, highest = fixed[before] + 1, fixed[before + 1]
    lowest[0], highest[0], lowest[-1], highest[-1] = 0, 0, len(reference), len(reference)
    return TranscriptSplit(cuts, lowest, highest)


def _heard_across_border(flat: Sequence[str], owners: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """For each matched recognized word (positions `matched` in `flat`, segments `owners`):
    whether the same word comes right before or after it in the neighbouring segment, unmatched."""
    words = np.array(flat, dtype=object)
    is_matched = np.zeros(len(flat), dtype=bool)
    is_matched[matched] = True
    twin = (words[1:] == words[:-1]) & (owners[1:] != owners[:-1])  # word k + 1 repeats word k across a border
    doubled = np.zeros(len(flat), dtype=bool)
    doubled[1:] |= twin & ~is_matched[:-1]
    doubled[:-1] |= twin & ~is_matched[1:]
    return doubled[matched]
