"""asr.features: fbank against a known tone and against kaldi-native-fbank, frame counts, CMVN, SpecAugment,
noise bursts, resampling, speed perturbation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.audio import load_audio
from asr.features import Fbank, GlobalCMVN, NoiseBursts, SilencePadding, SpecAugment, resample, speed_perturb
from asr.model_dir import Featurizer
from asr.training import training_from_config

DATA = Path(__file__).parents[2].parent / "shared" / "data"
YESNO = DATA / "yesno" / "waves_yesno"
AN4 = DATA / "an4" / "wav" / "an4_clstk"


def _mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def _peak_hz(fbank: Fbank, features: torch.Tensor) -> float:
    """Centre frequency of the loudest mel bin (Kaldi's bins: equal mel spacing from 20 Hz to Nyquist)."""
    low, high = _mel(20.0), _mel(fbank.sample_rate / 2)
    bin_ = int(features.mean(0).argmax())
    centre = low + (bin_ + 1) * (high - low) / (fbank.num_mel_bins + 1)
    return 700.0 * (math.exp(centre / 1127.0) - 1.0)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_fbank_peak_follows_the_tone(tmp_path, suffix):
    fbank = Fbank()
    t = np.arange(16000) / 16000
    peaks = []
    for hz in (300.0, 1000.0, 3000.0):
        path = tmp_path / f"{int(hz)}{suffix}"
        soundfile.write(path, 0.5 * np.sin(2 * np.pi * hz * t), 16000)
        features = fbank(load_audio(path))
        assert features.shape == (98, 80) and features.dtype == torch.float32
        peaks.append(_peak_hz(fbank, features))
        assert abs(_mel(peaks[-1]) - _mel(hz)) < 2 * (_mel(8000) - _mel(20)) / 81  # within two bins
    assert peaks == sorted(peaks)


def test_fbank_uses_int16_scale():
    # A full-scale-ish tone must give Kaldi-sized log energies (well above 0), not ~-10.
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000)
    assert Fbank()(tone).max() > 15.0


@pytest.mark.parametrize("rate, length_ms, shift_ms", [(16000, 25.0, 10.0), (8000, 25.0, 10.0), (16000, 20.0, 7.5)])
def test_num_frames_matches_output(rate, length_ms, shift_ms):
    fbank = Fbank(num_mel_bins=23, sample_rate=rate, frame_length_ms=length_ms, frame_shift_ms=shift_ms)
    lengths = [0, 1, fbank.window_size - 1, fbank.window_size, fbank.window_size + 1]
    lengths += torch.randint(0, 4 * rate, (40,), generator=torch.Generator().manual_seed(0)).tolist()
    for n in lengths:
        assert fbank(torch.randn(n) * 0.1).shape == (fbank.num_frames(n), 23), n


def test_fbank_on_real_yesno_audio():
    files = sorted(YESNO.glob("*.wav")) if YESNO.is_dir() else []
    if not files:
        pytest.skip(f"{YESNO} is absent (shared corpus data not present in this checkout)")
    waveform = load_audio(files[0], sample_rate=8000)
    features = Fbank(num_mel_bins=40, sample_rate=8000)(waveform)
    assert features.shape == (Fbank(sample_rate=8000).num_frames(waveform.numel()), 40)
    assert torch.isfinite(features).all()


def _kaldi_native_fbank(fbank: Fbank, waveform: torch.Tensor, dither: float = 0.0) -> torch.Tensor:
    """kaldi-native-fbank (Kaldi's compute-fbank-feats in C++, an independent implementation) with Fbank's options,
    every one that Fbank fixes spelled out so a change of the oracle's defaults cannot slip by."""
    knf = pytest.importorskip("kaldi_native_fbank")
    options = knf.FbankOptions()
    frame = options.frame_opts
    frame.samp_freq = fbank.sample_rate
    frame.frame_length_ms, frame.frame_shift_ms = fbank.frame_length_ms, fbank.frame_shift_ms
    frame.dither, frame.preemph_coeff, frame.remove_dc_offset, frame.window_type = dither, 0.97, True, "povey"
    frame.round_to_power_of_two, frame.snip_edges = True, True
    options.mel_opts.num_bins, options.mel_opts.low_freq, options.mel_opts.high_freq = fbank.num_mel_bins, 20.0, 0.0
    options.use_energy, options.htk_compat, options.use_log_fbank, options.use_power = False, False, True, True
    online = knf.OnlineFbank(options)
    online.accept_waveform(fbank.sample_rate, (waveform.double() * 32768).numpy())
    online.input_finished()
    rows = [online.get_frame(i) for i in range(online.num_frames_ready)]
    return torch.tensor(np.array(rows, dtype=np.float32).reshape(-1, fbank.num_mel_bins))


def test_noise_floor_is_the_mean_energy_of_kaldis_dither():
    """Digital silence with the floor reads as Kaldi's dither of the same size does on average
    (3,000 dithered frames: each mel bin's mean within 8% of ours; the lowest bins, one or two
    FFT bins wide, vary most), and is added to a recording's energies: log(E + N)."""
    silence = torch.zeros(30 * 16000)
    floor = Fbank(noise_floor=1.0)(silence)
    assert torch.allclose(floor, floor[:1].expand_as(floor))  # every frame of silence the same
    dithered = _kaldi_native_fbank(Fbank(), silence, dither=1.0).double().exp().mean(0)
    assert (floor[0].double().exp() / dithered - 1).abs().max() < 0.08
    assert (Fbank(noise_floor=2.0)(silence) - floor - math.log(4.0)).abs().max() < 1e-5  # energy grows as its square
    speech = load_audio(next(AN4.rglob("*.sph"))) if AN4.exists() else 0.1 * torch.randn(16000)
    plain = Fbank()(speech)
    expected = plain + torch.log1p(torch.exp(floor[0] - plain))
    assert (Fbank(noise_floor=1.0)(speech) - expected).abs().max() < 1e-4


def test_silence_padding_gives_the_features_of_audio_padded_with_zeros():
    """Frames of digital silence added to the features equal those of the waveform with zeros
    added (all but the frames whose windows straddle a join), and the amounts drawn are
    uniform over 0..max at each end, on about p of the examples."""
    torch.manual_seed(0)
    waveform = 0.1 * torch.randn(8000)
    config = training_from_config({"silence": {"p": 1.0, "max_seconds": 0.3}})
    featurizer = Featurizer(config.fbank(), GlobalCMVN(torch.full((80,), 5.0), torch.full((80,), 2.0)))
    padding = config.silence_padding(featurizer)
    assert padding.max_frames == 30
    plain = featurizer(waveform)
    for _ in range(20):
        padded = padding(plain)
        before = int((padded == padding.silence).all(1).int().argmin())  # the first row that is not silence
        assert torch.equal(padded[before: before + len(plain)], plain)
        after = len(padded) - len(plain) - before
        audio = featurizer(torch.cat([torch.zeros(before * 160), waveform, torch.zeros(after * 160)]))
        assert audio.shape == padded.shape
        # windows of 400 samples, 160 apart: two straddle the first join and, as 8,000 samples end
        # 80 past the last whole window, two the second
        straddling = [before - 2, before - 1, before + len(plain), before + len(plain) + 1]
        keep = torch.ones(len(audio), dtype=torch.bool)
        keep[[i for i in straddling if 0 <= i < len(keep)]] = False
        assert (audio[keep] - padded[keep]).abs().max() < 1e-4
    counts = torch.tensor([[len(SilencePadding(torch.zeros(1), 10, 0.5)(torch.ones(1, 1))) - 1] for _ in range(4000)])
    assert 0.45 < (counts > 0).float().mean() < 0.55  # half the examples padded
    assert 9.5 < counts[counts > 0].float().mean() < 10.5 and int(counts.max()) == 20  # 0..10 at each end


def _assert_close_to_kaldi(fbank: Fbank, waveform: torch.Tensor) -> None:
    """Both compute in float32: their mel weights differ by up to 2e-5 (each rounds the bin edges its own way)
    and an FFT's rounding error scales with the frame's energy, not a bin's. So errors are small next to the
    frame's energy (bound 5e-5; up to 2e-5 seen), and small in the log only for bins near the frame's peak
    (1e-3 within 5 nats, a factor 150, of the loudest bin; up to 3.3e-4 seen). Bins 20 nats below the peak,
    a pure tone's far bins, legitimately differ by up to 0.03."""
    ours, kaldi = fbank(waveform), _kaldi_native_fbank(fbank, waveform)
    assert ours.shape == kaldi.shape == (fbank.num_frames(waveform.numel()), fbank.num_mel_bins)
    power, kaldi_power = ours.double().exp(), kaldi.double().exp()
    assert ((power - kaldi_power).abs() / power.sum(1, keepdim=True)).max() < 5e-5
    loud = ours >= ours.amax(1, keepdim=True) - 5
    assert (ours - kaldi)[loud].abs().max() < 1e-3


def _signals(rate: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(rate)
    t = torch.arange(2 * rate) / rate
    return {"white": 0.1 * torch.randn(t.numel(), generator=g),
            "quiet": 1e-3 * torch.randn(t.numel(), generator=g),
            "tone": 0.5 * torch.sin(2 * math.pi * 1000 * t),
            "chirp": 0.5 * torch.sin(2 * math.pi * (100 * t + (rate / 2 - 200) / 4 * t**2))
            + 0.01 * torch.randn(t.numel(), generator=g),
            "brown": 1e-3 * torch.randn(t.numel(), generator=g).cumsum(0)}


@pytest.mark.parametrize("signal", ["white", "quiet", "tone", "chirp", "brown"])
@pytest.mark.parametrize("rate, bins, length_ms, shift_ms", [(16000, 80, 25.0, 10.0), (16000, 40, 25.0, 10.0),
                                                             (8000, 80, 25.0, 10.0), (8000, 23, 20.0, 7.5)])
def test_fbank_matches_kaldi_native_fbank_on_synthetic_signals(rate, bins, length_ms, shift_ms, signal):
    fbank = Fbank(num_mel_bins=bins, sample_rate=rate, frame_length_ms=length_ms, frame_shift_ms=shift_ms)
    _assert_close_to_kaldi(fbank, _signals(rate)[signal].float())


@pytest.mark.parametrize("folder, pattern, rate", [(YESNO, "*.wav", 8000), (AN4, "*/*.sph", 16000)])
def test_fbank_matches_kaldi_native_fbank_on_real_audio(folder, pattern, rate):
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        pytest.skip(f"{folder} is absent (shared corpus data not present in this checkout)")
    for path in files[:: max(1, len(files) // 3)][:3]:
        waveform = load_audio(path, sample_rate=rate)
        for bins in (80, 23):
            _assert_close_to_kaldi(Fbank(num_mel_bins=bins, sample_rate=rate), waveform)


def test_fbank_frame_counts_match_kaldi_at_the_edges():
    fbank = Fbank(num_mel_bins=23, sample_rate=8000, frame_length_ms=20.0, frame_shift_ms=7.5)  # 160 and 60 samples
    size, shift = fbank.window_size, fbank.window_shift
    for n in (0, 1, size - 1, size, size + 1, size + shift - 1, size + shift, size + 7 * shift + 5):
        waveform = 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(n))
        assert _kaldi_native_fbank(fbank, waveform).shape[0] == fbank.num_frames(n) == fbank(waveform).shape[0], n
    assert fbank(torch.zeros(size - 1)).shape == (0, 23)


def test_fbank_rejects_bad_options():
    with pytest.raises(ValueError, match="num_mel_bins >= 3"):
        Fbank(num_mel_bins=2)
    with pytest.raises(ValueError, match="num_mel_bins=128 is too many for a 256-point FFT"):
        Fbank(num_mel_bins=128, sample_rate=8000)  # narrow low bins between two FFT bins, which Kaldi refuses
    with pytest.raises(ValueError, match="frame_length_ms=0.1"):
        Fbank(frame_length_ms=0.1)
    with pytest.raises(ValueError, match="dither"):
        Fbank(dither=-1.0)
    with pytest.raises(ValueError, match="waveform"):
        Fbank()(torch.zeros(2, 16000))


def test_fbank_dither_fills_digital_silence():
    # Without dither silence sits at the log floor; dither adds fresh Gaussian noise of `dither` 16-bit steps per call.
    torch.manual_seed(0)
    silence = torch.zeros(16000)
    assert torch.equal(Fbank()(silence), torch.full((98, 80), math.log(torch.finfo(torch.float32).eps)))
    dithered = Fbank(dither=1.0)(silence)
    assert 0.0 < dithered.mean() < 10.0 and not torch.equal(dithered, Fbank(dither=1.0)(silence))


def test_cmvn_normalizes_its_data_and_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    scale, offset = torch.rand(80, generator=g) * 5 + 0.1, torch.randn(80, generator=g) * 10
    lengths = torch.randint(1, 300, (20,), generator=g).tolist()
    chunks = [torch.randn(n, 80, generator=g) * scale + offset for n in lengths]
    cmvn = GlobalCMVN.fit(iter(chunks))  # a one-pass iterable is enough
    normalized = cmvn.apply(torch.cat(chunks))
    torch.testing.assert_close(normalized.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalized.std(0, unbiased=False), torch.ones(80), atol=1e-4, rtol=0)

    path = tmp_path / "cmvn.json"
    cmvn.save(path)
    assert sorted(json.loads(path.read_text())) == ["mean", "std"]
    assert [p.name for p in tmp_path.iterdir()] == ["cmvn.json"]  # no temporary file left
    loaded = GlobalCMVN.load(path)
    torch.testing.assert_close(loaded.mean, cmvn.mean)
    torch.testing.assert_close(loaded.std, cmvn.std)
    batch = torch.cat(chunks)[:10].reshape(2, 5, 80).double()
    assert loaded.apply(batch).dtype == torch.float64  # [B, T, F] in the caller's dtype


def test_cmvn_constant_dimension_and_errors(tmp_path):
    features = torch.randn(100, 3)
    features[:, 1] = 7.0
    normalized = GlobalCMVN.fit([features]).apply(features)
    assert torch.isfinite(normalized).all() and (normalized[:, 1] == 0).all()
    with pytest.raises(ValueError, match="no feature frames"):
        GlobalCMVN.fit([])
    with pytest.raises(ValueError, match="dimension"):
        GlobalCMVN.fit([torch.randn(4, 3), torch.randn(4, 5)])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for path in (bad, tmp_path / "missing.json"):
        with pytest.raises(ValueError) as error:
            GlobalCMVN.load(path)
        assert str(path) in str(error.value)


def _masked_cells(out: torch.Tensor) -> torch.Tensor:
    zero = out == 0
    rows, columns = zero.all(dim=-1), zero.all(dim=-2)
    assert torch.equal(zero, rows.unsqueeze(-1) | columns.unsqueeze(-2))  # only whole frames / bands
    return zero


def test_specaugment_masks_bands_in_training_only():
    torch.manual_seed(0)
    augment = SpecAugment(time_width=0.1)
    features = torch.rand(200, 80) + 1.0  # no natural zeros
    out = augment(features)
    zero = _masked_cells(out)
    assert zero.all(dim=0).any() and zero.all(dim=1).any()  # some frequency bands and some frames
    assert zero.all(dim=0).sum() <= 2 * 26 and zero.all(dim=1).sum() <= 2 * 20
    torch.testing.assert_close(out[~zero], features[~zero])
    assert not torch.equal(augment(features), out)  # fresh masks per call

    augment.eval()
    assert augment(features) is features


def test_specaugment_batch_masks_are_per_example():
    torch.manual_seed(0)
    features = torch.rand(8, 150, 80) + 1.0
    out = SpecAugment()(features)
    assert out.shape == features.shape
    zero = _masked_cells(out)
    assert len({tuple(z.all(dim=0).nonzero().flatten().tolist()) for z in zero}) > 1
    assert torch.equal(SpecAugment(p=0.0)(features), features)
    kept = (SpecAugment(p=0.5)(features) == features).flatten(1).all(1)
    assert 0 < kept.sum() < 8


def test_specaugment_widths_and_starts_are_uniform_per_example():
    # One mask of each kind on 4,000 examples: widths uniform over 0..width-1, starts anywhere the mask fits.
    torch.manual_seed(0)
    out = SpecAugment(freq_masks=1, freq_width=10, time_masks=1, time_width=0.1)(torch.ones(4000, 100, 40))
    zero = _masked_cells(out)
    bands, frames = zero.all(dim=1), zero.all(dim=2)  # [B, F], [B, T]
    for masked, width, size in ((bands, 10, 40), (frames, 10, 100)):
        widths = masked.sum(1)
        assert torch.equal(widths.unique(), torch.arange(width))  # 0 .. width - 1, each example its own
        assert abs(widths.float().mean().item() - (width - 1) / 2) < 0.2
        assert masked[:, 0].any() and masked[:, -1].any()  # both ends reachable
        assert (masked.float().mean(0) <= 2 * width / size).all()  # no position favoured much


def _raw(cmvn: GlobalCMVN, features: torch.Tensor) -> torch.Tensor:
    return features * cmvn.std + cmvn.mean


def test_noise_bursts_add_power_inside_bursts_only():
    torch.manual_seed(0)
    cmvn = GlobalCMVN(torch.linspace(10, 14, 23), torch.linspace(2, 4, 23))
    augment = NoiseBursts(cmvn, count=2, p=1.0, min_frames=5, max_frames=20, speech=0.5)
    features = torch.randn(16, 120, 23)
    out = augment(features)
    added = _raw(cmvn, out).exp() - _raw(cmvn, features).exp()  # powers add: never less than the signal
    assert (added >= -1e-3 * _raw(cmvn, features).exp()).all()
    changed = (out - features).abs().amax(-1) > 1e-4  # [B, T]
    assert ((changed.sum(1) > 0) & (changed.sum(1) <= 2 * 20)).all()
    assert torch.equal(out[~changed], features[~changed])
    augment.eval()
    assert augment(features) is features


def test_noise_burst_levels_and_speech_fragments_are_exact():
    """A quiet target (level 8) and a loud other utterance (level 20) in one batch: a speech
    fragment of the other, 4 nats down, adds exactly log(e^8 + e^16); cut bursts start at frame 0."""
    cmvn = GlobalCMVN(torch.zeros(4), torch.ones(4))
    features = torch.stack([torch.full((50, 4), 8.0), torch.full((50, 4), 20.0)])
    augment = NoiseBursts(cmvn, count=1, p=1.0, min_frames=10, max_frames=10, ramp=1, speech=1.0,
                          speech_gain=(-4.0, -4.0), at_start=1.0)
    out = augment(features)[0]
    inside = (out - 8.0).abs().amax(-1) > 1e-4
    assert inside[0] and 5 < inside.sum() <= 10 and not inside[10:].any()
    torch.testing.assert_close(out[inside], torch.full_like(out[inside], math.log(math.exp(8) + math.exp(16))))

    noise = NoiseBursts(cmvn, count=1, p=1.0, ramp=1, speech=0.0, level=(2.0, 2.0), tilt=0.0, color=0.0,
                        flicker=0.0, at_start=0.0)
    quiet = torch.full((3, 60, 4), -20.0)  # flat noise at the example's mean level + 2
    out = noise(quiet)
    burst = out[(out > -19.9).any(-1)]
    assert 3 * 5 <= burst.shape[0] <= 3 * 40
    torch.testing.assert_close(burst, torch.full_like(burst, math.log(math.exp(-20) + math.exp(-18))))


def test_noise_bursts_reject_bad_options():
    cmvn = GlobalCMVN(torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="min_frames"):
        NoiseBursts(cmvn, min_frames=10, max_frames=5)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_changes_length_and_pitch(factor):
    rate = 16000
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(rate) / rate)
    out = speed_perturb(tone, rate, factor)
    assert abs(out.numel() - rate / factor) <= 1
    spectrum = torch.fft.rfft(out).abs()
    assert abs(spectrum.argmax().item() * rate / out.numel() - 1000 * factor) < 5
    assert speed_perturb(tone, rate, 1.0) is tone


@pytest.mark.parametrize("from_rate, to_rate", [(16000, 8000), (8000, 16000), (22050, 16000), (16000, 44100)])
def test_resampled_tone_keeps_its_frequency_and_level(from_rate, to_rate):
    t = torch.arange(from_rate) / from_rate
    tone = 0.5 * torch.sin(2 * math.pi * 1000 * t)
    out = resample(tone, from_rate, to_rate)
    assert out.dtype == tone.dtype and out.numel() == math.ceil(from_rate * to_rate / from_rate)
    spectrum = torch.fft.rfft(out).abs()
    assert abs(spectrum.argmax().item() * to_rate / out.numel() - 1000) <= 1
    middle = out[to_rate // 10 : -to_rate // 10]  # away from the edges, where the filter starts and stops
    assert abs(middle.square().mean().sqrt().item() - 0.5 / math.sqrt(2)) < 1e-3


@pytest.mark.parametrize("from_rate, to_rate", [(16000, 8000), (8000, 16000), (14400, 16000), (17600, 16000)])
def test_resampling_a_band_limited_signal_gives_its_samples_at_the_new_rate(from_rate, to_rate):
    """A sum of tones below both rates' Nyquist frequencies, resampled, equals the same tones
    sampled at the new rate (the ideal band-limited interpolation), away from the edges."""
    g = torch.Generator().manual_seed(1)
    frequencies = torch.rand(5, generator=g, dtype=torch.float64) * 0.45 * min(from_rate, to_rate)
    phases = torch.rand(5, generator=g, dtype=torch.float64) * 2 * math.pi

    def tones(rate):
        t = torch.arange(rate, dtype=torch.float64)[:, None] / rate
        return torch.sin(2 * math.pi * frequencies * t + phases).sum(1) / 5

    out, truth = resample(tones(from_rate), from_rate, to_rate), tones(to_rate)
    margin = to_rate // 20
    assert (out[margin:-margin] - truth[margin:-margin]).abs().max() < 2e-3


def test_resample_keeps_shapes_and_lengths():
    g = torch.Generator().manual_seed(0)
    stereo = torch.randn(2, 999, generator=g)
    out = resample(stereo, 17600, 16000)
    assert out.shape == (2, math.ceil(999 * 16000 / 17600))
    torch.testing.assert_close(out[1], resample(stereo[1], 17600, 16000))
    assert resample(stereo.double(), 16000, 8000).dtype == torch.float64
    assert resample(stereo, 16000, 16000) is stereo
    assert resample(torch.zeros(0), 16000, 8000).shape == (0,)
    with pytest.raises(ValueError, match="to_rate=0"):
        resample(stereo, 16000, 0)
