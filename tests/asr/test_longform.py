"""asr.longform: windows stitched into exact emissions, streaming audio and features, and
segmentation at pauses."""

import numpy as np
import pytest
import soundfile
import torch

from asr.audio import load_audio, stream_audio
from asr.features import Fbank
from asr.longform import (
    ChunkOptions,
    Segmenter,
    SegmentOptions,
    blank_runs,
    context_frames,
    encode_windows,
    feature_windows,
)
from asr.model import EncoderConfig, TransformerEncoder


def encoder(**overrides) -> TransformerEncoder:
    values = dict(vocab_size=6, input_dim=20, d_model=32, num_heads=2, num_layers=2, ff_dim=64, dropout=0.0)
    torch.manual_seed(0)
    return TransformerEncoder(EncoderConfig(**{**values, **overrides})).eval()


def stitched(model, features, chunk, context, block=37, batch_size=3):
    """Emissions of `features` [T, F] through windows, fed in blocks of `block` frames."""
    windows = list(feature_windows(features.split(block), model, chunk, context))
    out = [e for _, e, _ in encode_windows(model, windows, batch_size, torch.device("cpu"))]
    return windows, torch.cat(out)


@pytest.mark.parametrize("architecture, subsampling", [("transformer", 4), ("conformer", 4), ("conformer", 2),
                                                       ("transformer", 1)])
@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_windowed_model_chunks_equal_the_whole_file(architecture, subsampling, chunk):
    model = encoder(architecture=architecture, subsampling=subsampling, attention_window=3, conv_kernel=5)
    context = context_frames(model, 0.04, ChunkOptions())
    assert context == 2 * (3 + (2 if architecture == "conformer" else 0))
    features = torch.randn(611, 20)
    with torch.no_grad():
        whole = model(features[None], torch.tensor([611]))[0][0].double()
    windows, emissions = stitched(model, features, chunk, context)
    assert emissions.shape == whole.shape
    assert (emissions - whole).abs().max() <= 1e-4
    factor, span = model.config.subsampling, model.subsampling.min_length
    assert all(len(w.features) <= factor * (chunk + 2 * context - 1) + span for w in windows)  # bounded memory
    assert [w.last for w in windows] == [False] * (len(windows) - 1) + [True]


def test_full_attention_windows_cover_every_frame_once():
    model = encoder()
    features = torch.randn(1000, 20)
    with torch.no_grad():
        whole = model(features[None], torch.tensor([1000]))[0][0].double()
    windows, emissions = stitched(model, features, chunk=60, context=20)
    assert emissions.shape == whole.shape and len(windows) == -(-whole.shape[0] // 60)
    _, one = stitched(model, features, chunk=10_000, context=20)  # one window: the whole-file pass itself
    torch.testing.assert_close(one, whole, atol=1e-5, rtol=0)


def test_too_short_input_has_no_window():
    model = encoder()
    assert list(feature_windows([torch.randn(4, 20), torch.randn(2, 20)], model, 10, 2)) == []
    assert list(feature_windows([], model, 10, 2)) == []


def test_streamed_audio_and_features_equal_whole_reads(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.1, (44100 * 3 + 17, 2)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), samples, 44100)
    stream = stream_audio(path, 16000, block_seconds=0.7)
    streamed = torch.cat(list(stream.blocks))
    whole = load_audio(path, 16000)
    assert stream.duration == pytest.approx(3 + 17 / 44100)
    assert streamed.shape == whole.shape and (streamed - whole).abs().max() < 1e-5
    fbank = Fbank(num_mel_bins=20)
    torch.testing.assert_close(torch.cat(list(fbank.stream(whole.split(1234)))), fbank(whole), atol=1e-4, rtol=0)


def emissions_from_labels(labels, vocab=4):
    """Log-probabilities whose best token per frame is `labels` (0: blank)."""
    log_probs = torch.full((len(labels), vocab), -5.0, dtype=torch.float64)
    log_probs[torch.arange(len(labels)), torch.tensor(labels)] = -0.01
    return log_probs


def push_all(segmenter, emissions, chunk):
    segments = []
    for part in emissions.split(chunk):
        segments += segmenter.push(part)
    return segments + segmenter.finish()


def test_blank_runs():
    starts, lengths = blank_runs(torch.tensor([True, True, False, True, False, False, True]))
    assert starts.tolist() == [0, 3, 6] and lengths.tolist() == [2, 1, 1]


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_segments_end_at_pauses_and_keep_every_speech_frame(chunk):
    # pause = 4 frames: the 6-frame pause splits, the 2-frame one does not; leading silence is dropped.
    labels = [0] * 9 + [1, 0, 2, 2, 0, 0, 3] + [0] * 6 + [1, 1, 0, 2] + [0] * 3
    emissions = emissions_from_labels(labels)
    segments = push_all(Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=2.0), 0.1), emissions, chunk)
    # A segment ends 2 frames (half a pause) into the pause after it; the next starts 2 frames before its
    # speech (the first keeps its leading silence: the stream is shorter than a segment).
    assert [(first, len(s)) for first, s, _ in segments] == [(0, 18), (20, 9)]
    for first, segment, _ in segments:
        torch.testing.assert_close(segment, emissions[first:first + len(segment)])
    speech = [i for i, label in enumerate(labels) if label]
    covered = {first + i for first, segment, _ in segments for i in range(len(segment))}
    assert set(speech) <= covered and len(covered) == sum(len(s) for _, s, _ in segments)  # no frame twice


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_kept_dropped_stretches_and_segments_are_the_stream(chunk):
    """With keep_dropped, the pauses the segmenter skips come back whole, one stretch per pause:
    with the segments they hold every frame of the stream exactly once."""
    labels = [0] * 35 + [1, 0, 2] + [0] * 12 + [3, 3] + [0] * 7 + [1] + [0] * 40
    emissions = emissions_from_labels(labels)
    segmenter = Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=3.0), 0.1, keep_dropped=True)
    segments = push_all(segmenter, emissions, chunk)
    stretches = segmenter.dropped_stretches()
    assert [(first, len(e)) for first, e in stretches] == [(0, 33), (40, 8), (54, 3), (62, 38)]
    pieces = sorted([(first, e) for first, e, _ in segments] + stretches, key=lambda piece: piece[0])
    torch.testing.assert_close(torch.cat([e for _, e in pieces]), emissions)
    assert Segmenter(SegmentOptions(), 0.1).dropped_stretches() == []  # not kept unless asked


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_a_stream_within_a_segment_is_searched_whole_with_breaks_where_a_longer_one_is_cut(chunk):
    """The same frames as the test above, but segments may hold 30: one segment, whose break
    is where that test cut (frame 18); appended speech beyond 30 frames restores its cuts."""
    labels = [0] * 9 + [1, 0, 2, 2, 0, 0, 3] + [0] * 6 + [1, 1, 0, 2] + [0] * 3
    options = SegmentOptions(pause_seconds=0.4, max_segment_seconds=3.0)
    segments = push_all(Segmenter(options, 0.1), emissions_from_labels(labels), chunk)
    assert [(first, len(s), breaks) for first, s, breaks in segments] == [(0, 29, [18])]
    longer = labels + [1, 0, 1] * 3  # 38 frames
    segments = push_all(Segmenter(options, 0.1), emissions_from_labels(longer), chunk)
    assert [(first, len(s), breaks) for first, s, breaks in segments] == [(0, 18, []), (20, 18, [])]


def test_long_speech_is_cut_at_its_longest_pause():
    # No pause of 4 frames; segments may hold 12 frames: the cut goes into the 3-frame gap.
    labels = [1, 0, 2, 3, 0, 0, 0, 1, 2, 0, 3, 1, 2, 1, 0, 3, 2]
    segments = push_all(Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=1.2), 0.1),
                        emissions_from_labels(labels), chunk=5)
    assert [(first, len(s)) for first, s, _ in segments] == [(0, 5), (5, 12)]


@pytest.mark.parametrize("chunk", [4, 100])
def test_without_a_pause_label_segments_are_cut_at_the_maximum_length(chunk):
    # An ASG model with word tokens has no blank: label 0 is then a token like any other.
    labels = [0] * 9 + [1, 0, 2] + [0] * 6 + [3]
    segments = push_all(Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=0.8), 0.1, blank=None),
                        emissions_from_labels(labels), chunk)
    assert [(first, len(s)) for first, s, _ in segments] == [(0, 8), (8, 8), (16, 3)]


def test_silence_only_gives_no_segment_and_bounded_memory():
    segmenter = Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=3.0), 0.1)
    for _ in range(100):
        assert segmenter.push(emissions_from_labels([0] * 50)) == []
        assert len(segmenter.buffer) <= 30
    assert segmenter.finish() == []
    short = Segmenter(SegmentOptions(pause_seconds=0.4, max_segment_seconds=3.0), 0.1)
    assert short.push(emissions_from_labels([0] * 20)) == []
    assert [(first, len(s)) for first, s, _ in short.finish()] == [(0, 20)]  # a short silent file is searched whole


def test_feature_tape_gives_the_features_of_a_segment_alone():
    """Encoding `tape.segment(first, count)` on its own gives exactly `count` output frames, and a
    windowed model's frames there equal the whole file's (away from the segment's edges)."""
    from asr.longform import FeatureTape

    model = encoder(attention_window=2, num_layers=1)
    features = torch.randn(400, 20)
    tape = FeatureTape(model)
    assert torch.equal(torch.cat(list(tape.record(features.split(33)))), features)
    with torch.no_grad():
        whole = model(features[None], torch.tensor([400]))[0][0]
        tape.forget_before(20)
        for first, count in [(20, 30), (55, 10), (60, 38)]:
            piece = tape.segment(first, count)
            alone = model(piece[None], torch.tensor([len(piece)]))[0][0]
            assert len(alone) == count
            torch.testing.assert_close(alone[3:-3], whole[first + 3:first + count - 3], atol=1e-5, rtol=0)

