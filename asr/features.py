"""Acoustic features: Kaldi-compatible log-mel fbank, global CMVN, SpecAugment, speed perturbation.

Typical order: `speed_perturb` (training only) on the waveform, `Fbank`, then
`GlobalCMVN.apply`, then `SpecAugment` (its masks fill with 0, which after CMVN is
the global mean).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
import torchaudio
from torchaudio.compliance import kaldi

from .files import write_atomic

_INT16_SCALE = 32768.0
_MIN_STD = 1e-5  # floor for constant dimensions, so CMVN never divides by zero


class Fbank(torch.nn.Module):
    """Kaldi compute-fbank-feats log-mel filterbank: waveform [num_samples] in [-1, 1] -> [num_frames, num_mel_bins].

    Kaldi reads 16-bit samples as integers, so the waveform is scaled by 32768 first:
    log energies, dither amplitude and the energy floor then match Kaldi's features.
    Frames are taken with snip_edges (only whole windows); a waveform shorter than
    one window gives [0, num_mel_bins].
    """

    def __init__(self, num_mel_bins: int = 80, sample_rate: int = 16000, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, dither: float = 0.0):
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.dither = dither
        # Same arithmetic as torchaudio.compliance.kaldi, so num_frames matches exactly.
        self.window_size = int(sample_rate * frame_length_ms * 0.001)
        self.window_shift = int(sample_rate * frame_shift_ms * 0.001)

    def num_frames(self, num_samples: int) -> int:
        """Frames `forward` returns for a waveform of `num_samples` samples."""
        if num_samples < self.window_size:
            return 0
        return 1 + (num_samples - self.window_size) // self.window_shift

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 1:
            raise ValueError(f"Fbank takes a waveform [num_samples], got shape {tuple(waveform.shape)}")
        if self.num_frames(waveform.numel()) == 0:
            return waveform.new_zeros(0, self.num_mel_bins)
        return kaldi.fbank(
            waveform.unsqueeze(0) * _INT16_SCALE, num_mel_bins=self.num_mel_bins,
            sample_frequency=self.sample_rate, frame_length=self.frame_length_ms,
            frame_shift=self.frame_shift_ms, dither=self.dither,
        )


class GlobalCMVN:
    """Per-dimension mean and variance normalization with statistics fit once over a training set."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if mean.dim() != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be equal-length vectors, got {tuple(mean.shape)}, {tuple(std.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("std must be positive")
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, features: Iterable[torch.Tensor]) -> GlobalCMVN:
        """Statistics over every row of every tensor [..., F] (no padding rows), as float64 running sums."""
        count, total, total_sq = 0, None, None
        for x in features:
            x = x.detach().to("cpu", torch.float64).reshape(-1, x.shape[-1])
            if total is None:
                total, total_sq = x.new_zeros(x.shape[1]), x.new_zeros(x.shape[1])
            elif x.shape[1] != total.numel():
                raise ValueError(f"feature dimension {x.shape[1]} differs from the first tensor's {total.numel()}")
            count += x.shape[0]
            total += x.sum(0)
            total_sq += x.square().sum(0)
        if not count:
            raise ValueError("GlobalCMVN.fit got no feature frames")
        mean = total / count
        std = (total_sq / count - mean.square()).clamp_min(0).sqrt().clamp_min(_MIN_STD)
        return cls(mean, std)

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """(features - mean) / std over the last dimension, in the features' dtype and device."""
        if features.shape[-1] != self.mean.numel():
            raise ValueError(f"features have {features.shape[-1]} dimensions, CMVN statistics {self.mean.numel()}")
        return (features - self.mean.to(features)) / self.std.to(features)

    def save(self, path: str | os.PathLike) -> None:
        """Writes {"mean": [...], "std": [...]} as JSON, atomically."""
        write_atomic(path, json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GlobalCMVN:
        """Reads a file written by `save`; a missing or malformed file raises ValueError naming it."""
        try:
            stats = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a readable CMVN statistics file ({error})") from error


class SpecAugment(torch.nn.Module):
    """SpecAugment frequency and time masks on [T, F] or [B, T, F] features, in training mode only.

    Each example gets its own masks (torchaudio's iid masks) and is augmented with
    probability `p`. Frequency masks are up to `freq_width` bins wide, time masks up
    to `time_width` times the (padded) length. Masked values are 0, torchaudio's fill.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 27, time_masks: int = 2,
                 time_width: float = 0.05, p: float = 1.0):
        super().__init__()
        if not (0.0 <= time_width <= 1.0 and 0.0 <= p <= 1.0):
            raise ValueError(f"time_width and p must lie in [0, 1], got {time_width} and {p}")
        self.freq_masks, self.time_masks = freq_masks, time_masks
        self.time_width, self.p = time_width, p
        self.freq_masking = torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return features
        if features.dim() not in (2, 3):
            raise ValueError(f"SpecAugment takes [T, F] or [B, T, F], got shape {tuple(features.shape)}")
        batch = features if features.dim() == 3 else features.unsqueeze(0)
        x = batch.transpose(1, 2)  # torchaudio masks [..., freq, time]
        for _ in range(self.freq_masks):
            x = self.freq_masking(x)
        time_masking = torchaudio.transforms.TimeMasking(int(self.time_width * x.shape[-1]), iid_masks=True)
        for _ in range(self.time_masks):
            x = time_masking(x)
        x = x.transpose(1, 2)
        if self.p < 1.0:
            chosen = torch.rand(x.shape[0], device=x.device) < self.p
            x = torch.where(chosen[:, None, None], x, batch)
        return x if features.dim() == 3 else x.squeeze(0)


def speed_perturb(waveform: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Kaldi/sox `speed`: resample as if recorded at sample_rate * factor, keep playing at sample_rate.

    Tempo and pitch both scale by `factor`; the length becomes about len / factor.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return waveform
    return torchaudio.functional.resample(waveform, round(sample_rate * factor), sample_rate)
