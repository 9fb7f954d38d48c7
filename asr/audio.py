"""Audio file reading: any format libsndfile knows (wav, flac, NIST SPHERE, ogg, mp3), else audioread.

`load_audio` returns float32 samples in [-1, 1], mixed down to mono and resampled
to the requested rate; `audio_info` reads only the header, for manifests and
durations. Every failure raises `AudioError` with the file's path in the message.

Truncated files (a WAV or SPHERE header declaring more frames than the file
holds) are read as far as they go with a warning naming the file, as Kaldi and
sox do: the samples present are intact PCM. Compressed files whose decoder
breaks mid-stream (e.g. a cut FLAC) raise `AudioError`, since nothing reliable
can be returned.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import torch

from . import features

_STREAMING_SIZES = (0, 0xFFFFFFFF)  # RIFF data sizes that writers to pipes leave as "unknown"


class AudioError(ValueError):
    """An audio file is missing, unreadable, corrupt or empty; the message names the file."""


class EmptyAudioError(AudioError):
    """A readable audio file with no samples (decoders may treat it as silence)."""


class LowSampleRateWarning(UserWarning):
    """An audio file's sample rate is below the rate it is read at (the model's)."""


def load_audio(path: str | Path, sample_rate: int = 16000, mono: bool = True, speed: float = 1.0,
               band_limit: int | None = None) -> torch.Tensor:
    """float32 samples of `path` resampled to `sample_rate`, played `speed` times faster (speed
    perturbation: tempo and pitch both change, as sox's `speed`), and with `band_limit` as if
    recorded at that rate (narrowband augmentation, `asr.features.band_limit`).

    A file recorded below `sample_rate` is resampled up with a warning naming the file and both
    rates: it has nothing above half its rate, which a model trained on wideband audio without
    band-limited copies has never heard. Shape [num_samples] (channels averaged) if `mono`,
    else [channels, num_samples]."""
    file_rate, _, _, data = _read(Path(path), decode=True)
    waveform = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
    if mono:
        waveform = waveform.mean(dim=0)
    _warn_if_below(path, file_rate, sample_rate)
    waveform = features.resample(waveform, file_rate, sample_rate)
    if band_limit is not None:
        waveform = features.band_limit(waveform, sample_rate, band_limit)
    return features.speed_perturb(waveform, sample_rate, speed)


@dataclass
class AudioStream:
    """A file read block by block: its duration in seconds and an iterator of mono float32 blocks
    at the requested rate, which concatenated equal `load_audio(path, rate)`. Memory stays at a
    block, whatever the file's length; a read error mid-file raises AudioError from the iterator."""

    path: str
    duration: float
    blocks: Iterator[torch.Tensor]


def stream_audio(path: str | Path, sample_rate: int = 16000, block_seconds: float = 30.0) -> AudioStream:
    """`path` as an `AudioStream` of blocks of about `block_seconds` (long recordings); a missing,
    unreadable or empty file raises AudioError (EmptyAudioError) here, before any block, and a
    file below `sample_rate` warns as `load_audio` does."""
    path = Path(path)
    file_rate, num_samples, _, _ = _read(path, decode=False)
    _warn_if_below(path, file_rate, sample_rate)
    block = max(1, int(block_seconds * file_rate))
    blocks = _soundfile_blocks(path, block) if _soundfile_readable(path) else _audioread_blocks(path, block)
    return AudioStream(str(path), num_samples / file_rate, features.resample_stream(blocks, file_rate, sample_rate))


def _warn_if_below(path: str | Path, file_rate: int, sample_rate: int) -> None:
    """The LowSampleRateWarning of a file recorded below the rate it is read at, shown at the
    caller of `load_audio` / `stream_audio`."""
    if file_rate < sample_rate:
        warnings.warn(f"{path}: recorded at {file_rate} Hz, below the model's {sample_rate} Hz: resampling up; it has "
                      f"no content above {file_rate // 2} Hz", LowSampleRateWarning, stacklevel=3)


def _soundfile_readable(path: Path) -> bool:
    try:
        soundfile.info(str(path))
        return True
    except soundfile.SoundFileError:
        return False


def _soundfile_blocks(path: Path, block: int) -> Iterator[torch.Tensor]:
    with soundfile.SoundFile(path) as f:
        while True:
            data = f.read(block, dtype="float32", always_2d=True)
            if not len(data):
                return
            yield torch.from_numpy(data.mean(axis=1, dtype=np.float32))


def _audioread_blocks(path: Path, block: int) -> Iterator[torch.Tensor]:
    with _open_audioread(path) as f:
        pending, size, channels = [], 0, f.channels
        try:
            for buffer in f:
                pending.append(buffer)
                size += len(buffer)
                if size >= 2 * channels * block:
                    yield _mono_int16(b"".join(pending), channels)
                    pending, size = [], 0
        except Exception as error:  # audioread's backends raise many unrelated types
            raise AudioError(f"{path}: cannot read audio ({error})") from error
        if pending:
            yield _mono_int16(b"".join(pending), channels)


def _mono_int16(pcm: bytes, channels: int) -> torch.Tensor:
    return torch.from_numpy(_int16_frames(pcm, channels).mean(axis=1, dtype=np.float32))


def _open_audioread(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its raw backend imports aifc/audioop/sunau
        import audioread

        return audioread.audio_open(str(path))


def _int16_frames(pcm: bytes, channels: int) -> np.ndarray:
    """Interleaved little-endian int16 PCM as float32 [frames, channels] in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample_rate, num_samples, channels) of `path` from its header, without decoding the samples."""
    sample_rate, num_samples, channels, _ = _read(Path(path), decode=False)
    return sample_rate, num_samples, channels


def _read(path: Path, decode: bool) -> tuple[int, int, int, np.ndarray | None]:
    """Reads with soundfile, falls back to audioread for formats libsndfile cannot open."""
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        result = _read_soundfile(path, decode)
    except soundfile.SoundFileError as error:
        try:
            result = _read_audioread(path, decode)
        except Exception:  # audioread raises many unrelated types; soundfile's reason is the useful one
            raise AudioError(f"{path}: cannot read audio ({error})") from error
    if result[1] == 0:
        raise EmptyAudioError(f"{path}: contains no audio samples")
    return result


def _read_soundfile(path: Path, decode: bool) -> tuple[int, int, int, np.ndarray | None]:
    with soundfile.SoundFile(path) as f:
        declared = _declared_frames(path, f.format)
        if declared is not None and declared > f.frames:
            warnings.warn(f"{path}: header declares {declared} frames but the file holds {f.frames}; "
                          "reading those (truncated file?)", stacklevel=4)
        data = f.read(dtype="float32", always_2d=True) if decode else None
        frames = f.frames if data is None else data.shape[0]
        return f.samplerate, frames, f.channels, data


def _read_audioread(path: Path, decode: bool) -> tuple[int, int, int, np.ndarray | None]:
    with _open_audioread(path) as f:
        sample_rate, channels = f.samplerate, f.channels
        if not decode:
            return sample_rate, round(f.duration * sample_rate), channels, None
        data = _int16_frames(b"".join(f), channels)
    return sample_rate, data.shape[0], channels, data


def _declared_frames(path: Path, container: str) -> int | None:
    """Frame count claimed by a RIFF WAV or NIST SPHERE header, which libsndfile silently clamps to the file size."""
    with open(path, "rb") as f:
        if container == "NIST":
            match = re.search(rb"sample_count -i (\d+)", f.read(1024))
            return int(match.group(1)) if match else None
        head = f.read(12)
        if container not in ("WAV", "WAVEX") or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while len(header := f.read(8)) == 8:
            chunk, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                return None if block_align == 0 or size in _STREAMING_SIZES else size // block_align
            body = f.read(size + size % 2)
            if chunk == b"fmt ":
                block_align = int.from_bytes(body[12:14], "little")
    return None
