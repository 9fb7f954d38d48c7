"""asr.audio: real corpus files, resampling, mix-down, formats, and errors that name the file."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from asr.audio import AudioError, LowSampleRateWarning, audio_info, load_audio
from asr.features import band_limit

DATA = Path(__file__).parents[2].parent / "shared" / "data"
YESNO = DATA / "yesno" / "waves_yesno"
AN4 = DATA / "an4" / "wav" / "an4_clstk"


def _first(folder: Path, pattern: str) -> Path:
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not files:
        pytest.skip(f"{folder} is absent (shared corpus data not present in this checkout)")
    return files[0]


def _tone(path: Path, rate: int, seconds: float = 1.0, channels: int = 1, **kwargs) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    data = np.stack([0.5 * np.sin(2 * np.pi * (440 * (c + 1)) * t) for c in range(channels)], axis=1)
    soundfile.write(path, data, rate, **kwargs)
    return data


def test_yesno_wav_loads_at_native_and_doubled_rate():
    path = _first(YESNO, "*.wav")
    info = soundfile.info(path)
    assert audio_info(path) == (8000, info.frames, 1)
    native = load_audio(path, sample_rate=8000)
    assert native.dtype == torch.float32 and native.shape == (info.frames,)
    assert 0.01 < native.abs().max() <= 1.0
    with pytest.warns(LowSampleRateWarning, match=f"{path}: recorded at 8000 Hz, below the model's 16000 Hz"):
        upsampled = load_audio(path)  # 16 kHz default
    assert abs(upsampled.numel() - 2 * info.frames) <= 1


def test_only_reading_below_the_file_rate_is_silent(tmp_path):
    path = tmp_path / "tone.wav"
    _tone(path, 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(path, sample_rate=16000)
        load_audio(path, sample_rate=8000)  # downsampling loses nothing the model expects


def _band_energy(waveform: torch.Tensor, rate: int, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(waveform).abs().square()
    frequencies = torch.fft.rfftfreq(waveform.numel(), 1 / rate)
    return float(spectrum[(frequencies >= low) & (frequencies < high)].sum())


def test_band_limit_removes_what_a_lower_rate_cannot_hold(tmp_path):
    t = torch.arange(16000) / 16000
    waveform = 0.3 * torch.sin(2 * math.pi * 1000 * t) + 0.3 * torch.sin(2 * math.pi * 6000 * t)
    narrow = band_limit(waveform, 16000, 8000)
    assert narrow.shape == waveform.shape
    kept = _band_energy(narrow, 16000, 900, 1100) / _band_energy(waveform, 16000, 900, 1100)
    removed = _band_energy(narrow, 16000, 5900, 6100) / _band_energy(waveform, 16000, 5900, 6100)
    assert 0.95 < kept < 1.05 and removed < 1e-4
    assert torch.equal(band_limit(waveform, 16000, 16000), waveform)
    with pytest.raises(ValueError, match="band limit"):
        band_limit(waveform, 16000, 22050)
    path = tmp_path / "two-tones.wav"
    soundfile.write(path, waveform.numpy(), 16000)
    torch.testing.assert_close(load_audio(path, band_limit=8000), band_limit(load_audio(path), 16000, 8000))


def test_an4_sphere_loads():
    path = _first(AN4, "*/*.sph")
    info = soundfile.info(path)
    assert audio_info(path) == (16000, info.frames, 1)
    waveform = load_audio(path)
    assert waveform.shape == (info.frames,)
    assert 0.01 < waveform.abs().max() <= 1.0


def test_stereo_is_averaged_or_kept(tmp_path):
    path = tmp_path / "stereo.wav"
    data = _tone(path, 16000, channels=2, subtype="FLOAT")
    assert audio_info(path) == (16000, 16000, 2)
    torch.testing.assert_close(load_audio(path), torch.from_numpy(data.mean(axis=1)).float())
    assert load_audio(path, mono=False).shape == (2, 16000)


@pytest.mark.parametrize("name", ["tone.flac", "tone.ogg", "tone.mp3"])
def test_compressed_formats(tmp_path, name):
    path = tmp_path / name
    _tone(path, 16000)
    rate, frames, channels = audio_info(path)
    assert (rate, channels) == (16000, 1) and abs(frames - 16000) < 2000  # mp3 pads with decoder delay
    assert load_audio(path).abs().max() > 0.3


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    for read in (load_audio, audio_info):
        with pytest.raises(AudioError, match="nowhere.wav: no such audio file"):
            read(path)


def test_random_bytes_are_not_audio(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(os.urandom(4096))
    for read in (load_audio, audio_info):
        with pytest.raises(AudioError, match="cannot read audio") as error:
            read(path)
        assert str(path) in str(error.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 16000)
    for read in (load_audio, audio_info):
        with pytest.raises(AudioError, match="no audio samples") as error:
            read(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("name", ["cut.wav", "cut.sph"])
def test_truncated_pcm_reads_what_is_there_with_a_warning(tmp_path, name):
    full = tmp_path / ("full" + Path(name).suffix)
    _tone(full, 16000, format="NIST" if name.endswith(".sph") else "WAV", subtype="PCM_16")
    path = tmp_path / name
    path.write_bytes(full.read_bytes()[:20000])
    with pytest.warns(UserWarning, match="declares 16000 frames") as record:
        waveform = load_audio(path)
    assert str(path) in str(record[0].message)
    with pytest.warns(UserWarning):
        _, frames, _ = audio_info(path)
    assert 0 < waveform.numel() == frames < 16000


def test_truncated_flac_raises(tmp_path):
    full = tmp_path / "full.flac"
    _tone(full, 16000)
    path = tmp_path / "cut.flac"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert str(path) in str(error.value)


def test_audioread_fallback_when_soundfile_cannot_open(tmp_path, monkeypatch):
    path = tmp_path / "tone.wav"
    data = _tone(path, 8000, channels=2, subtype="PCM_16")

    def refuse(*args, **kwargs):
        raise soundfile.LibsndfileError(1, prefix="Error opening: ")

    monkeypatch.setattr(soundfile, "SoundFile", refuse)
    assert audio_info(path) == (8000, 8000, 2)
    expected = torch.from_numpy(data.mean(axis=1)).float()
    torch.testing.assert_close(load_audio(path, sample_rate=8000), expected, atol=1e-4, rtol=0)
