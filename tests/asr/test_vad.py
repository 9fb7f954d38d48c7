"""`asr transcribe --vad silero`: silero-vad's speech marks, read while the audio streams, cut
segments at the pauses between synthesized phrases, whatever the acoustic model says."""

import json

import librosa
import numpy as np
import pytest
import soundfile
import torch

from asr import cli
from asr.espeak import synthesizer
from asr.longform import Segmenter, SegmentOptions
from asr.vad import SpeechTrack, _drop_short_runs, load_vad

from .conftest import RATE

pytest.importorskip("silero_vad")

PHRASES = ["the quick brown fox", "jumps over the lazy dog", "seven eight nine"]
SILENCE = (1.0, 1.5, 2.0, 1.0)  # seconds before, between and after the phrases


@pytest.fixture(scope="module")
def recording():
    """Three phrases at RATE with silences between; (samples, [(start, end) seconds of each phrase])."""
    speak = synthesizer()
    parts, spans, time = [np.zeros(int(SILENCE[0] * RATE), np.float32)], [], SILENCE[0]
    for phrase, gap in zip(PHRASES, SILENCE[1:]):
        speech = librosa.resample(speak(phrase), orig_sr=speak.sample_rate, target_sr=RATE)
        loud = np.flatnonzero(np.abs(speech) > 0.02)
        speech = speech[loud[0]:loud[-1] + 1]  # eSpeak's own silence trimmed: spans are speech
        spans.append((time, time + len(speech) / RATE))
        parts += [speech, np.zeros(int(gap * RATE), np.float32)]
        time = spans[-1][1] + gap
    return np.concatenate(parts), spans


def test_speech_marks_cover_the_phrases_not_the_silences_and_do_not_depend_on_the_blocks(recording):
    samples, spans = recording
    model, audio = load_vad("silero"), torch.from_numpy(samples)
    marks = []
    for blocks in ([audio], list(audio.split(1000)), list(audio.split(7777))):
        track = SpeechTrack(model, RATE)
        assert [b.shape for b in track.follow(blocks)] == [b.shape for b in blocks]  # passed on unchanged
        marks.append(track.speech)
    assert all(torch.equal(marks[0], other) for other in marks[1:])
    frame = 0.04
    pauses = track.pauses(0, int(len(samples) / RATE / frame), frame)
    times = (torch.arange(len(pauses)) + 0.5) * frame
    inside, far = torch.zeros(len(pauses), dtype=torch.bool), torch.ones(len(pauses), dtype=torch.bool)
    for start, end in spans:
        inside |= (times > start + 0.1) & (times < end - 0.1)
        far &= (times < start - 0.3) | (times > end + 0.3)
    assert float(pauses[inside].float().mean()) < 0.1  # the phrases are speech
    assert bool(pauses[far].all())  # silence well away from them is not
    assert not track.pauses(len(pauses) + 100, 5, frame).any()  # audio not marked yet counts as speech


def test_short_speech_runs_are_dropped_unless_still_open():
    speech = torch.tensor([0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)
    expected = torch.tensor([0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)  # runs < 3 go; the open one stays
    assert torch.equal(_drop_short_runs(speech, 3), expected)


class _ScriptedVad(torch.nn.Module):
    """Answers each window with the next of a fixed list of speech probabilities."""

    def __init__(self, probabilities):
        super().__init__()
        self.probabilities, self.position = probabilities, 0

    def reset_states(self):
        self.position = 0

    def forward(self, window, rate):
        self.position += 1
        return torch.tensor(self.probabilities[self.position - 1])


@pytest.mark.parametrize("seed", range(5))
def test_marks_settled_block_by_block_equal_the_whole_file_cleaned_at_once(seed):
    rng = np.random.default_rng(seed)
    runs = rng.integers(1, 8, size=60)  # alternating silence and speech runs of 1-7 windows
    probabilities = np.repeat(np.arange(len(runs)) % 2, runs).astype(float).tolist()
    samples = torch.zeros(len(probabilities) * 512)
    expected = _drop_short_runs(torch.tensor(probabilities) >= 0.5, 3)
    for size in (512, 700, 1536, 5000, len(samples)):
        track = SpeechTrack(_ScriptedVad(probabilities), 16000, min_speech_seconds=3 * 512 / 16000)
        list(track.follow(samples.split(size)))
        assert torch.equal(track.speech, expected), size


def test_the_segmenter_takes_its_pauses_from_the_marks_not_the_blanks():
    emissions = torch.zeros(30, 3)
    emissions[:, 1] = 1.0  # every frame's best token is 1: no blank anywhere
    marked = torch.zeros(30, dtype=torch.bool)
    marked[10:18] = True  # an 8-frame pause
    segmenter = Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=2.5), 0.1,
                          pauses=lambda first, count: marked[first:first + count])
    segments = segmenter.push(emissions[:12]) + segmenter.push(emissions[12:]) + segmenter.finish()
    assert [(first, len(s)) for first, s, _ in segments] == [(0, 12), (16, 14)]


def test_transcribe_with_vad_cuts_segments_at_the_silences(model_dir, recording, tmp_path, capsys):
    samples, spans = recording
    soundfile.write(tmp_path / "talk.wav", samples, RATE)
    assert cli.main(["transcribe", str(model_dir), str(tmp_path / "talk.wav"), "--vad", "silero", "-f", "json",
                     "--pause-seconds", "0.5"]) == 0
    segments = json.loads(capsys.readouterr().out)["segments"]
    assert len(segments) == len(spans)
    for k, (segment, (start, end)) in enumerate(zip(segments, spans)):
        earliest = 0.0 if k == 0 else start - 0.6  # a file shorter than a segment keeps its leading silence
        assert earliest <= segment["start"] <= start and end <= segment["end"] <= end + 1.0, (segments, spans)
    with pytest.raises(SystemExit):
        cli.main(["transcribe", str(model_dir), str(tmp_path / "talk.wav"), "--vad", "webrtc"])
    assert "invalid choice: 'webrtc'" in capsys.readouterr().err
