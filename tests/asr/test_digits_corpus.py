"""eSpeak NG synthesis and the synthesized spoken-digits corpus."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile

from asr.corpora import digits
from asr.espeak import ENGLISH_VOICES, VARIANTS, Voice, synthesizer


def test_synthesis_is_speech_and_rate_controls_length():
    fast, slow = Voice("en-us", "m1", rate=300), Voice("en-us", "m1", rate=100)
    a = synthesizer()("one two three", fast)
    assert a.dtype == np.float32 and 0.05 < np.abs(a).max() <= 1.0
    again = synthesizer()("one two three", fast)  # eSpeak keeps some state: equal up to a few samples
    assert abs(len(again) - len(a)) <= 0.02 * len(a)
    seconds = len(synthesizer()("one two three", slow)) / synthesizer().sample_rate
    assert 1.5 * len(a) / synthesizer().sample_rate < seconds < 6.0  # slower speech is longer


def test_same_calls_give_the_same_samples_in_every_process():
    # eSpeak seeds its breath noise from the clock unless told a seed: without it, f5's samples
    # differ from one process to the next.
    script = ("import hashlib; from asr.espeak import Voice, synthesizer; "
              "print([hashlib.sha1(synthesizer()('one two', Voice('en-us', 'f5'), seed=s).tobytes()).hexdigest() "
              "for s in (3, 4)])")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", ENGLISH_VOICES)
def test_every_listed_voice_exists(name):
    assert synthesizer()("seven", Voice(name, VARIANTS[0])).size > 0


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="no voice 'xx-none'"):
        synthesizer()("one", Voice("xx-none"))


def test_corpus_is_reproducible_resumable_and_transcribed(tmp_path):
    first = digits.synthesize(tmp_path / "a", {"train": 6, "test": 3}, seed=5)
    again = digits.synthesize(tmp_path / "b", {"train": 6, "test": 3}, seed=5)
    assert [(u.text, u.speaker) for u in first["train"]] == [(u.text, u.speaker) for u in again["train"]]
    for u, v in zip(first["train"], again["train"]):
        assert u.duration == pytest.approx(v.duration, rel=0.05)
    for u in first["train"] + first["test"]:
        words = u.text.split()
        assert 1 <= len(words) <= digits.MAX_DIGITS and set(words) <= set(digits.WORDS)
        samples, rate = soundfile.read(u.audio)
        assert rate == 16000 and u.duration == pytest.approx(len(samples) / rate)
        assert 0.3 < u.duration < 4 + 0.35 * len(words)
    # A rerun keeps whole files it finds instead of synthesizing them again.
    kept = first["train"][0].audio
    stamp = (tmp_path / "a" / "train" / "train-00000.wav").stat().st_mtime_ns
    rerun = digits.synthesize(tmp_path / "a", {"train": 6, "test": 3}, seed=5)
    assert rerun["train"][0].audio == kept
    assert (tmp_path / "a" / "train" / "train-00000.wav").stat().st_mtime_ns == stamp
