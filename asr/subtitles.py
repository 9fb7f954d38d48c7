"""Subtitles from timed words: cues of phrases that viewers can read, as SRT or WebVTT.

Cues follow the usual timed-text guidelines (Netflix, BBC; whisper's --max_line_width and
--max_line_count): at most `max_lines` lines of at most `max_line_chars` characters, at most
`max_seconds` on screen, at least `min_seconds` and a reading speed of at most
`max_chars_per_second` where the gaps around the speech leave room for it, and breaks at
pauses and at segment ends rather than in the middle of a phrase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class SubtitleOptions:
    """Limits of one cue (see the module docstring); `pause_seconds` of silence between two
    words ends a cue, and consecutive cues keep `gap_seconds` apart when stretched."""

    max_line_chars: int = 42
    max_lines: int = 2
    max_seconds: float = 7.0
    min_seconds: float = 0.8
    max_chars_per_second: float = 17.0
    pause_seconds: float = 0.5
    gap_seconds: float = 0.08

    def __post_init__(self):
        if self.max_line_chars < 1 or self.max_lines < 1:
            raise ValueError(f"max_line_chars and max_lines must be >= 1, got {self.max_line_chars} and "
                             f"{self.max_lines}")
        if not 0 <= self.min_seconds < self.max_seconds or self.max_chars_per_second <= 0:
            raise ValueError(f"need 0 <= min_seconds < max_seconds and max_chars_per_second > 0, got "
                             f"{self.min_seconds}, {self.max_seconds} and {self.max_chars_per_second}")


@dataclass
class Cue:
    """One subtitle: its lines of text, its words and its times in seconds."""

    start: float
    end: float
    lines: list[str]
    words: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def wrap(words: Sequence[str], width: int, max_lines: int) -> list[str] | None:
    """`words` in as few lines of at most `width` characters as they need, balanced (the
    narrowest width that needs no more lines), or None when they need over `max_lines`. A word longer
    than `width` gets a line of its own."""
    if not words:
        return []
    narrowest = max(len(w) for w in words)
    fewest = len(_greedy(words, max(width, narrowest)))
    if fewest > max_lines:
        return None
    low, high = narrowest, max(width, narrowest)
    while low < high:  # the fewest characters per line that still needs no more lines
        middle = (low + high) // 2
        low, high = (low, middle) if len(_greedy(words, middle)) <= fewest else (middle + 1, high)
    return _greedy(words, low)


def _greedy(words: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def make_cues(words: Sequence[str], starts: Sequence[float], ends: Sequence[float], breaks: Sequence[int] = (),
              options: SubtitleOptions | None = None, duration: float | None = None) -> list[Cue]:
    """Cues of the timed words: each cue takes words while they fit its lines and its
    `max_seconds`, and none spans a pause or a break (index of a word that starts a segment);
    then cue times are stretched into the silence after (or before) them toward
    `min_seconds` and the reading speed, never past a neighbour or `duration`."""
    options = options or SubtitleOptions()
    breaks = set(breaks)
    groups: list[list[int]] = []
    for i in range(len(words)):
        if groups and not _ends_before(groups[-1], i, words, starts, ends, breaks, options):
            groups[-1].append(i)
        else:
            groups.append([i])
    cues = [Cue(starts[g[0]], ends[g[-1]], wrap([words[i] for i in g], options.max_line_chars, options.max_lines)
                or [words[i] for i in g], [words[i] for i in g]) for g in groups]
    _stretch(cues, options, duration)
    return cues


def _ends_before(group: list[int], i: int, words, starts, ends, breaks, options: SubtitleOptions) -> bool:
    """Whether the cue of `group` must end before word i."""
    if i in breaks or starts[i] - ends[i - 1] >= options.pause_seconds:
        return True
    if ends[i] - starts[group[0]] > options.max_seconds:
        return True
    return wrap([words[j] for j in group] + [words[i]], options.max_line_chars, options.max_lines) is None


def _stretch(cues: list[Cue], options: SubtitleOptions, duration: float | None) -> None:
    """Lengthen short or fast cues into the silence around them (never shortening one)."""
    for k, cue in enumerate(cues):
        chars = len(" ".join(cue.words))
        wanted = min(options.max_seconds, max(options.min_seconds, chars / options.max_chars_per_second))
        if cue.end - cue.start >= wanted:
            continue
        limit = cues[k + 1].start - options.gap_seconds if k + 1 < len(cues) else duration
        end = cue.start + wanted if limit is None else min(cue.start + wanted, limit)
        cue.end = round(max(cue.end, end), 3)
        floor = cues[k - 1].end + options.gap_seconds if k else 0.0
        cue.start = round(min(cue.start, max(floor, cue.end - wanted)), 3)


def _timestamp(seconds: float, separator: str) -> str:
    milliseconds = int(round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, blank line between cues."""
    return "\n".join(f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n"
                     for i, c in enumerate(cues, start=1))


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the `WEBVTT` header, then cues with `HH:MM:SS.mmm` times."""
    return "WEBVTT\n\n" + "\n".join(f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n"
                                    for c in cues)
