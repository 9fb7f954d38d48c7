"""asr.subtitles: phrase cues within the timed-text limits, parsed back by the `srt` and
`webvtt-py` packages."""

import string

import hypothesis.strategies as st
import pytest
import srt
import webvtt
from hypothesis import given, settings

from asr.subtitles import SubtitleOptions, make_cues, to_srt, to_vtt, wrap

OPTIONS = SubtitleOptions()


def seconds(timestamp: str) -> float:
    hours, minutes, rest = timestamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


@st.composite
def timed_words(draw):
    """Speech-like words: 1-12 letters, 0.1-0.8 s each, mostly short gaps with some pauses."""
    count = draw(st.integers(1, 120))
    words, starts, ends, time = [], [], [], draw(st.floats(0, 2))
    for _ in range(count):
        words.append(draw(st.text(string.ascii_uppercase, min_size=1, max_size=12)))
        time += draw(st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.3, 0.6, 1.5]))
        starts.append(round(time, 3))
        time += draw(st.floats(0.1, 0.8))
        ends.append(round(time, 3))
    breaks = draw(st.lists(st.integers(0, count - 1), max_size=3))
    return words, starts, ends, breaks, round(time + draw(st.floats(0, 3)), 3)


def check_cues(cues, words, starts, ends, breaks, duration, options=OPTIONS):
    assert [w for c in cues for w in c.words] == words  # every word once, in order
    first = 0
    for k, cue in enumerate(cues):
        count = len(cue.words)
        lines = cue.lines
        assert " ".join(lines) == " ".join(cue.words)
        assert len(lines) <= options.max_lines
        assert all(len(line) <= options.max_line_chars or " " not in line for line in lines)
        assert cue.start <= starts[first] and cue.end >= ends[first + count - 1]  # the speech is on screen
        assert cue.end - cue.start <= options.max_seconds + 1e-6 or count == 1
        assert 0 <= cue.start < cue.end <= max(duration, ends[-1])
        if k:
            assert cue.start >= cues[k - 1].end  # no overlap
        for i in range(first + 1, first + count):  # no cue spans a pause or a segment start
            assert starts[i] - ends[i - 1] < options.pause_seconds and i not in breaks
        # Shorter than min_seconds or faster than the reading speed only when boxed in by its neighbours.
        wanted = min(options.max_seconds,
                     max(options.min_seconds, len(" ".join(cue.words)) / options.max_chars_per_second))
        room_after = cue.end >= (cues[k + 1].start - options.gap_seconds if k + 1 < len(cues) else duration) - 2e-3
        room_before = cue.start <= (cues[k - 1].end + options.gap_seconds if k else 0.0) + 2e-3
        assert cue.end - cue.start >= wanted - 2e-3 or (room_after and room_before)
        first += count


@settings(max_examples=150, deadline=None)
@given(timed_words())
def test_cues_meet_the_limits_and_keep_every_word(example):
    words, starts, ends, breaks, duration = example
    cues = make_cues(words, starts, ends, breaks, duration=duration)
    check_cues(cues, words, starts, ends, breaks, duration)
    parsed = list(srt.parse(to_srt(cues)))
    assert [p.content for p in parsed] == [c.text for c in cues]
    assert [p.start.total_seconds() for p in parsed] == pytest.approx([c.start for c in cues], abs=1e-3)
    vtt = webvtt.from_string(to_vtt(cues))
    assert [c.text for c in vtt] == [c.text for c in cues]
    assert [seconds(c.end) for c in vtt] == pytest.approx([c.end for c in cues], abs=1e-3)


def test_phrases_fill_two_balanced_lines():
    words = "the quick brown fox jumps over the lazy dog and keeps on running far into the night".split()
    starts = [0.3 * i for i in range(len(words))]
    cues = make_cues(words, starts, [s + 0.25 for s in starts], duration=10.0)
    assert [c.lines for c in cues] == [  # as many words as two lines of 42 hold, split evenly
        ["the quick brown fox jumps over the lazy", "dog and keeps on running far into the"],
        ["night"],
    ]


def test_limits_can_be_changed():
    words = ["word"] * 12
    starts = [0.5 * i for i in range(12)]
    options = SubtitleOptions(max_line_chars=10, max_lines=1, max_seconds=3.0)
    cues = make_cues(words, starts, [s + 0.4 for s in starts], options=options, duration=6.0)
    assert all(c.lines == ["word word"] for c in cues) and len(cues) == 6
    check_cues(cues, words, starts, [s + 0.4 for s in starts], [], 6.0, options)


def test_wrap():
    assert wrap(["a", "bb", "ccc"], 42, 2) == ["a bb ccc"]
    assert wrap(["aaaa", "bb", "cc", "dddd"], 8, 2) == ["aaaa bb", "cc dddd"]
    assert wrap(["aaaa", "bbbb", "cccc"], 8, 2) is None
    assert wrap(["x" * 50], 42, 2) == ["x" * 50]  # an overlong word stands alone
    with pytest.raises(ValueError, match="max_lines"):
        SubtitleOptions(max_lines=0)
