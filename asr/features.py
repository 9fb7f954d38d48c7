"""Acoustic features: Kaldi-compatible log-mel fbank, global CMVN, SpecAugment, noise bursts,
silence padding, resampling, speed perturbation, band limiting.

Typical order: `speed_perturb` and `band_limit` (training only) on the waveform, `Fbank`, then
`GlobalCMVN.apply`, then `SilencePadding` (each example), then `NoiseBursts` and `SpecAugment`
on the batch (its masks fill with 0, which after CMVN is the global mean).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from graphs.io import write_atomic

_INT16_SCALE = 32768.0
_PREEMPHASIS = 0.97  # Kaldi's preemphasis-coefficient
_LOW_HZ = 20.0  # Kaldi's low-freq: the lowest mel bin's left edge
_FLT_EPSILON = torch.finfo(torch.float32).eps  # Kaldi floors mel energies at FLT_EPSILON before the log
_MIN_STD = 1e-5  # floor for constant dimensions, so CMVN never divides by zero
_SILENT = -1e4  # log energy of "no noise here": log-add-exp leaves the signal exactly as it was


class Fbank(torch.nn.Module):
    """Kaldi compute-fbank-feats log-mel filterbank: waveform [num_samples] in [-1, 1] -> [num_frames, num_mel_bins].

    Kaldi reads 16-bit samples as integers, so the waveform is scaled by 32768 first:
    log energies, dither amplitude and the energy floor then match Kaldi's features.
    Frames are taken with snip_edges (only whole windows); a waveform shorter than
    one window gives [0, num_mel_bins]. Kaldi's defaults otherwise: DC offset removed,
    pre-emphasis 0.97, Povey window, FFT size rounded up to a power of two, power
    spectrum, mel bins from 20 Hz to Nyquist, log with a FLT_EPSILON floor, no energy.

    `noise_floor` adds to every mel energy the energy that white noise of that standard
    deviation (in 16-bit steps) is expected to have there: Kaldi's dither made deterministic.
    At 1.0 (Kaldi's dither level) digital silence, exact zeros between phrases or in the empty
    band of upsampled telephone audio, reads as the quietest a 16-bit recording can be instead
    of log(FLT_EPSILON), some 20 below any recorded silence; a recorded energy E becomes
    E + N, a change of less than 0.05 in the log where E is over 20 times the floor N.
    """

    def __init__(self, num_mel_bins: int = 80, sample_rate: int = 16000, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, dither: float = 0.0, noise_floor: float = 0.0):
        super().__init__()
        if num_mel_bins < 3 or sample_rate <= 0 or dither < 0 or noise_floor < 0:
            raise ValueError(f"Fbank needs num_mel_bins >= 3 (as Kaldi), sample_rate > 0, dither >= 0 and "
                             f"noise_floor >= 0, got num_mel_bins={num_mel_bins}, sample_rate={sample_rate}, "
                             f"dither={dither}, noise_floor={noise_floor}")
        self.num_mel_bins = num_mel_bins
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.dither = dither
        self.noise_floor = noise_floor
        # Kaldi truncates both to whole samples (the arithmetic torchaudio's port used, so frame counts are unchanged).
        self.window_size = int(sample_rate * frame_length_ms * 0.001)
        self.window_shift = int(sample_rate * frame_shift_ms * 0.001)
        if self.window_size < 2 or self.window_shift < 1:
            raise ValueError(f"frame_length_ms={frame_length_ms} and frame_shift_ms={frame_shift_ms} at "
                             f"sample_rate={sample_rate} give a window of {self.window_size} samples and a shift of "
                             f"{self.window_shift}; need at least 2 and 1")
        self.fft_size = 1 << (self.window_size - 1).bit_length()  # the power of two at or above window_size
        if (_mel_banks(sample_rate, num_mel_bins, self.fft_size).sum(0) == 0).any():
            raise ValueError(f"num_mel_bins={num_mel_bins} is too many for a {self.fft_size}-point FFT at "
                             f"{sample_rate} Hz: some mel bins would cover no FFT bin (Kaldi refuses them too)")

    def num_frames(self, num_samples: int) -> int:
        """Frames `forward` returns for a waveform of `num_samples` samples."""
        if num_samples < self.window_size:
            return 0
        return 1 + (num_samples - self.window_size) // self.window_shift

    def stream(self, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Features of a waveform given as consecutive blocks, as they become complete: the
        outputs concatenated equal `self(torch.cat(blocks))` (every frame is computed from its
        own window only), with memory bounded by a block."""
        pending = None
        for block in blocks:
            pending = block if pending is None else torch.cat([pending, block])
            count = self.num_frames(pending.numel())
            if count:
                yield self(pending[: (count - 1) * self.window_shift + self.window_size])
                pending = pending[count * self.window_shift:]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 1:
            raise ValueError(f"Fbank takes a waveform [num_samples], got shape {tuple(waveform.shape)}")
        if self.num_frames(waveform.numel()) == 0:
            return waveform.new_zeros(0, self.num_mel_bins)
        frames = (waveform * _INT16_SCALE).unfold(0, self.window_size, self.window_shift)  # [num_frames, window]
        if self.dither:
            frames = frames + self.dither * torch.randn_like(frames)
        energies = _power_spectra(frames, self.fft_size) @ _mel_banks(self.sample_rate, self.num_mel_bins,
                                                                      self.fft_size).to(frames)
        if self.noise_floor:
            noise = _white_noise_energies(self.sample_rate, self.num_mel_bins, self.window_size, self.fft_size)
            energies = energies + self.noise_floor ** 2 * noise.to(energies)
        return energies.clamp_min(_FLT_EPSILON).log()


def _power_spectra(frames: torch.Tensor, fft_size: int) -> torch.Tensor:
    """Power spectra [n, fft_size / 2] of frames [n, window]: DC offset removed, pre-emphasized,
    windowed (Kaldi's order)."""
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # Kaldi pre-emphasizes sample 0 against itself
    spectrum = torch.fft.rfft((frames - _PREEMPHASIS * previous) * _povey_window(frames.shape[1]).to(frames),
                              n=fft_size)
    return spectrum[:, : fft_size // 2].abs().square()  # Kaldi's mel bins give the Nyquist bin no weight


@functools.lru_cache(maxsize=8)
def _white_noise_energies(sample_rate: int, num_mel_bins: int, window_size: int, fft_size: int) -> torch.Tensor:
    """Expected mel energies [num_mel_bins] of white noise of unit variance: the spectrum is linear
    in the samples before it is squared, so the power spectra of the identity's rows add up to it."""
    noise = _power_spectra(torch.eye(window_size, dtype=torch.float64), fft_size).sum(0)
    return (noise @ _mel_banks(sample_rate, num_mel_bins, fft_size).double()).float()


# The window and the mel banks are float32 tables rounded as torchaudio's Kaldi port (this module's former
# backend) rounded them. The lowest mel bins of speech sit 1e-7 below a frame's peak power, where float32 rounding
# of the tables alone moves their log energies by up to 3e-3; with these tables the features are bit-identical
# to torchaudio's, so models trained on its features see the same numbers.

@functools.lru_cache(maxsize=8)
def _povey_window(size: int) -> torch.Tensor:
    """Kaldi's default window [size]: a symmetric Hann window raised to 0.85, which never quite reaches zero inside."""
    return torch.hann_window(size, periodic=False, dtype=torch.float32).pow(0.85)


@functools.lru_cache(maxsize=8)
def _mel_banks(sample_rate: int, num_mel_bins: int, fft_size: int) -> torch.Tensor:
    """Kaldi's triangular mel filters [fft_size // 2, num_mel_bins] on FFT bins 0 .. fft_size / 2 - 1: peaks
    equally spaced in mel (1127 ln(1 + f / 700)) between 20 Hz and Nyquist, each reaching to its neighbours'."""
    low, high = (1127.0 * math.log(1.0 + hz / 700.0) for hz in (_LOW_HZ, sample_rate / 2))
    edges = low + torch.arange(num_mel_bins + 2, dtype=torch.float32) * ((high - low) / (num_mel_bins + 1))
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    hz = (sample_rate / fft_size) * torch.arange(fft_size // 2, dtype=torch.float32)
    bins = 1127.0 * (1.0 + hz / 700.0).log()
    rising, falling = (bins - left) / (centre - left), (right - bins) / (right - centre)
    return torch.minimum(rising, falling).clamp_min(0.0).T.contiguous()


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


@dataclasses.dataclass
class SpecAugmentOptions:
    """SpecAugment's masks: `freq_masks` of up to `freq_width` bins, `time_masks` of up to
    `time_width` times the length, on an example with probability `p`."""

    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width: float = 0.05
    p: float = 1.0

    def __post_init__(self):
        if not (0.0 <= self.time_width <= 1.0 and 0.0 <= self.p <= 1.0):
            raise ValueError(f"time_width and p must lie in [0, 1], got {self.time_width} and {self.p}")
        if min(self.freq_masks, self.freq_width, self.time_masks) < 0:
            raise ValueError(f"freq_masks, freq_width and time_masks must be >= 0, got {self.freq_masks}, "
                             f"{self.freq_width} and {self.time_masks}")


class SpecAugment(torch.nn.Module):
    """SpecAugment frequency and time masks on [T, F] or [B, T, F] features, in training mode only.

    Each example gets its own masks and is augmented with probability `p`. A mask's width is
    uniform over whole numbers in [0, `freq_width`) bins, or [0, `time_width` times the (padded)
    length) frames, and its start uniform over the positions where it fits. Masked values are 0.
    """

    def __init__(self, **options):
        """`options`: `SpecAugmentOptions` fields."""
        super().__init__()
        self.options = SpecAugmentOptions(**options)
        self.freq_masks, self.freq_width, self.time_masks = (self.options.freq_masks, self.options.freq_width,
                                                             self.options.time_masks)
        self.time_width, self.p = self.options.time_width, self.options.p

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return features
        if features.dim() not in (2, 3):
            raise ValueError(f"SpecAugment takes [T, F] or [B, T, F], got shape {tuple(features.shape)}")
        batch = features if features.dim() == 3 else features.unsqueeze(0)
        (B, T, F), device = batch.shape, batch.device
        bands = _random_spans(B, F, self.freq_masks, self.freq_width, device)  # [B, F]
        frames = _random_spans(B, T, self.time_masks, int(self.time_width * T), device)  # [B, T]
        masked = bands[:, None, :] | frames[:, :, None]
        if self.p < 1.0:
            masked &= (torch.rand(B, device=device) < self.p)[:, None, None]
        out = batch.masked_fill(masked, 0.0)
        return out if features.dim() == 3 else out.squeeze(0)


def _random_spans(batch: int, size: int, count: int, max_width: float, device: torch.device) -> torch.Tensor:
    """[batch, size] bool: the union of `count` spans per row, each of a whole width uniform in [0, max_width)
    and starting uniformly where it fits, so every position, the last included, can be masked."""
    widths = (torch.rand(batch, count, 1, device=device) * max_width).floor()
    starts = (torch.rand(batch, count, 1, device=device) * (size - widths + 1)).floor()
    position = torch.arange(size, device=device)
    return ((position >= starts) & (position < starts + widths)).any(dim=1)


@dataclasses.dataclass
class NoiseOptions:
    """`NoiseBursts` settings (see there): bursts per example, their odds, lengths and levels."""

    count: int = 2
    p: float = 0.5
    min_frames: int = 5
    max_frames: int = 40
    ramp: int = 3
    at_start: float = 0.25
    speech: float = 0.5
    speech_gain: tuple[float, float] = (-6.0, -2.0)
    level: tuple[float, float] = (-2.0, 3.0)
    tilt: float = 2.0
    color: float = 1.0
    flicker: float = 0.5

    def __post_init__(self):
        probabilities = {"p": self.p, "at_start": self.at_start, "speech": self.speech}
        if not all(0.0 <= value <= 1.0 for value in probabilities.values()):
            raise ValueError(f"NoiseBursts probabilities must lie in [0, 1], got {probabilities}")
        if not (1 <= self.min_frames <= self.max_frames and self.count >= 0 and self.ramp >= 1):
            raise ValueError(f"NoiseBursts needs 1 <= min_frames <= max_frames, count >= 0 and ramp >= 1, got frames "
                             f"{self.min_frames}..{self.max_frames}, count={self.count}, ramp={self.ramp}")
        self.speech_gain, self.level = tuple(self.speech_gain), tuple(self.level)


@dataclasses.dataclass
class SilenceOptions:
    """`SilencePadding` settings: the odds that an example is padded, and the most silence
    added at each end."""

    p: float = 0.5
    max_seconds: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0 or self.max_seconds < 0:
            raise ValueError(f"silence padding needs p in [0, 1] and max_seconds >= 0, got {self.p} and "
                             f"{self.max_seconds}")


class SilencePadding:
    """Digital silence added before and after an example's features [T, F]: with probability
    `p`, 0 to `max_frames` frames (uniform, each end drawn apart) of `silence`, the features of
    a frame of zeros. Recordings cut from longer ones, edited ones and the segments of a long
    file arrive with such stretches; a model that never heard one mistakes it for something.
    Draws from torch's RNG, after any cache (each read gets its own)."""

    def __init__(self, silence: torch.Tensor, max_frames: int, p: float):
        self.silence, self.max_frames, self.p = silence, max_frames, p

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        if not self.max_frames or float(torch.rand(())) >= self.p:
            return features
        before, after = torch.randint(self.max_frames + 1, (2,)).tolist()
        pad = self.silence.to(features).expand(max(before, after), -1)
        return torch.cat([pad[:before], features, pad[:after]])


class NoiseBursts(torch.nn.Module):
    """Short bursts of noise and of faint speech added to CMVN-normalized log-mel features
    [T, F] or [B, T, F], in training mode only: the breaths, rustles, clicks and background
    voices that no transcript mentions.

    A model that met only clean silence between words takes such sounds for words (yesno: a
    200 ms voiced fragment before the first word, the tail of an earlier take, was read as an
    extra YES). Each example gets up to `count` bursts, each present with probability `p`,
    lasting `min_frames`..`max_frames` frames with `ramp`-frame fades; with probability
    `at_start` a burst is already under way when the recording begins. A burst is, with
    probability `speech`, a stretch of another utterance of the batch made `speech_gain` nats
    quieter (a range; with a batch of one, another stretch of the same one), else coloured
    noise at the example's mean log-mel energy plus `level` nats (a range), tilted across the
    bins by up to `tilt` nats, with `color` nats of random colour per bin and `flicker` nats of
    frame-to-frame fluctuation. Bursts add to the signal as powers do (log-add-exp in the
    unnormalized log-mel domain, through `cmvn`), so they fill quiet frames and hardly touch
    loud ones; frames without a burst are returned bit-exact.
    """

    def __init__(self, cmvn: GlobalCMVN, **options):
        """`options`: `NoiseOptions` fields."""
        super().__init__()
        o = self.options = NoiseOptions(**options)
        self.register_buffer("mean", cmvn.mean.clone(), persistent=False)
        self.register_buffer("std", cmvn.std.clone(), persistent=False)
        self.count, self.p, self.min_frames, self.max_frames, self.ramp = o.count, o.p, o.min_frames, o.max_frames, o.ramp
        self.at_start, self.speech, self.speech_gain = o.at_start, o.speech, o.speech_gain
        self.level, self.tilt, self.color, self.flicker = o.level, o.tilt, o.color, o.flicker

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.count == 0 or self.p == 0.0:
            return features
        if features.dim() not in (2, 3):
            raise ValueError(f"NoiseBursts takes [T, F] or [B, T, F], got shape {tuple(features.shape)}")
        batch = features if features.dim() == 3 else features.unsqueeze(0)
        raw = batch.float() * self.std + self.mean  # [B, T, F] log-mel energies
        bursts = self._bursts(raw)
        noisy = ((torch.logaddexp(raw, bursts) - self.mean) / self.std).to(features.dtype)
        out = torch.where(bursts > _SILENT / 2, noisy, batch)
        return out if features.dim() == 3 else out.squeeze(0)

    def _bursts(self, raw: torch.Tensor) -> torch.Tensor:
        """Log-mel energies [B, T, F] of this batch's bursts (`_SILENT` where there are none)."""
        (B, T, _), K, device = raw.shape, self.count, raw.device
        lengths = torch.randint(self.min_frames, self.max_frames + 1, (B, K), device=device).clamp_max(T)
        starts = (torch.rand(B, K, device=device) * (T - lengths + 1)).floor()
        cut = torch.rand(B, K, device=device) < self.at_start
        starts = torch.where(cut, -(torch.rand(B, K, device=device) * lengths / 2).floor(), starts)
        t = torch.arange(T, device=device, dtype=torch.float32)
        inside = torch.minimum(t - starts[..., None] + 1, starts[..., None] + lengths[..., None] - t)  # [B, K, T]
        present = (inside > 0) & (torch.rand(B, K, 1, device=device) < self.p)
        envelope = torch.where(present, (inside / self.ramp).clamp(1e-3, 1.0).log(), _SILENT)
        is_speech = torch.rand(B, K, 1, 1, device=device) < self.speech
        content = torch.where(is_speech, self._fragments(raw, starts, lengths), self._noise(raw, K))  # [B, K, T, F]
        return torch.logsumexp(envelope[..., None] + content, dim=1)

    def _fragments(self, raw: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, K, T, F]: for burst k of example b, frames of example b - 1 from a random offset, quieter."""
        (B, T, F), K = raw.shape, starts.shape[1]
        offsets = (torch.rand(B, K, device=raw.device) * (T - lengths + 1)).floor()
        t = torch.arange(T, device=raw.device)
        index = (offsets[..., None] + t - starts[..., None]).clamp(0, T - 1).long()  # [B, K, T]
        source = raw.roll(1, dims=0)[:, None].expand(B, K, T, F)
        low, high = self.speech_gain
        gain = low + (high - low) * torch.rand(B, K, 1, 1, device=raw.device)
        return torch.gather(source, 2, index[..., None].expand(B, K, T, F)) + gain

    def _noise(self, raw: torch.Tensor, count: int) -> torch.Tensor:
        """[B, K, T, F]: coloured, flickering noise around each example's mean energy."""
        (B, T, F), device = raw.shape, raw.device
        low, high = self.level
        bins = torch.linspace(-0.5, 0.5, F, device=device)
        spectrum = (raw.mean((1, 2))[:, None, None] + low + (high - low) * torch.rand(B, count, 1, device=device)
                    + self.tilt * (2 * torch.rand(B, count, 1, device=device) - 1) * bins
                    + self.color * torch.randn(B, count, F, device=device))  # [B, K, F]
        return spectrum[:, :, None, :] + self.flicker * torch.randn(B, count, T, F, device=device)


_SINC_ZERO_CROSSINGS = 6  # each side of the interpolation kernel
_SINC_ROLLOFF = 0.99  # the low-pass cutoff as a share of the lower rate's Nyquist frequency


def resample(waveform: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """`waveform` [..., num_samples] resampled from `from_rate` to `to_rate` Hz, ceil(num_samples *
    to_rate / from_rate) samples long, in its dtype and on its device.

    Band-limited interpolation with a Hann-windowed sinc of 6 zero crossings a side, cut off at
    0.99 of the lower rate's Nyquist frequency, as one strided convolution (a polyphase filter
    bank: one kernel per output phase). This is the interpolation torchaudio's `resample` does
    by default, which every model here was trained with (speed perturbation and band limiting
    go through it): switching filters changes what augmented training audio sounds like, and
    the yesno recipe's result with it (measured with soxr's steeper filter: 3 of 5 seeds
    made errors, against 2 of 12 with this one). A short filter lets through a little above
    the cutoff; tones more than ~2% of the rate above it are attenuated by over 40 dB."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got from_rate={from_rate} and to_rate={to_rate}")
    if from_rate == to_rate:
        return waveform
    common = math.gcd(int(from_rate), int(to_rate))
    step, phases = int(from_rate) // common, int(to_rate) // common
    kernels, half = _sinc_kernels(step, phases, waveform.dtype, waveform.device)
    shape, length = waveform.shape, waveform.shape[-1]
    if not waveform.numel():
        return waveform.new_zeros(*shape[:-1], -(-phases * length // step))
    flat = torch.nn.functional.pad(waveform.reshape(-1, 1, length), (half, half + step))
    out = torch.nn.functional.conv1d(flat, kernels, stride=step)  # [channels, phases, blocks]
    out = out.transpose(1, 2).reshape(*shape[:-1], -1)
    return out[..., : -(-phases * length // step)]


def resample_stream(blocks: Iterable[torch.Tensor], from_rate: int, to_rate: int) -> Iterator[torch.Tensor]:
    """`resample` of a waveform given as consecutive blocks [n_i], block by block: the outputs
    concatenated equal `resample(torch.cat(blocks), from_rate, to_rate)` exactly, and memory
    stays at a block and the filter's reach."""
    if from_rate == to_rate:
        yield from blocks
        return
    common = math.gcd(int(from_rate), int(to_rate))
    step, phases = int(from_rate) // common, int(to_rate) // common
    pending, total, produced, kernels, half = None, 0, 0, None, 0
    for block in blocks:
        if kernels is None:
            kernels, half = _sinc_kernels(step, phases, block.dtype, block.device)
            pending = block.new_zeros(half)  # the zeros `resample` pads before the first sample
        total += block.numel()
        pending = torch.cat([pending, block])
        ready = (pending.numel() - 2 * half - step) // step + 1  # output blocks with all their input here
        if ready > 0:
            out = torch.nn.functional.conv1d(pending[None, None, :(ready - 1) * step + 2 * half + step], kernels,
                                             stride=step)
            produced += ready * phases
            yield out[0].T.reshape(-1)
            pending = pending[ready * step:]
    if kernels is None:
        return
    length = -(-phases * total // step)
    if length > produced:
        padded = torch.nn.functional.pad(pending, (0, half + step))
        out = torch.nn.functional.conv1d(padded[None, None], kernels, stride=step)[0].T.reshape(-1)
        yield out[: length - produced]


def _sinc_kernels(step: int, phases: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, int]:
    """The polyphase filter bank [phases, 1, taps] taking `step` input samples to `phases`
    output samples, and how many samples each side of a block it reads."""
    cutoff = min(step, phases) * _SINC_ROLLOFF  # in cycles per block of `step` input samples
    half = math.ceil(_SINC_ZERO_CROSSINGS * step / cutoff)
    kernel_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    offsets = torch.arange(-half, half + step, dtype=kernel_dtype, device=device) / step
    phase = -torch.arange(phases, dtype=kernel_dtype, device=device)[:, None] / phases
    x = ((phase + offsets) * cutoff).clamp(-_SINC_ZERO_CROSSINGS, _SINC_ZERO_CROSSINGS)
    window = torch.cos(x * math.pi / _SINC_ZERO_CROSSINGS / 2) ** 2
    x = x * math.pi
    sinc = torch.where(x == 0, torch.tensor(1.0, dtype=kernel_dtype, device=device), x.sin() / x)
    return (sinc * (window * (cutoff / step))).unsqueeze(1).to(dtype), half


def band_limit(waveform: torch.Tensor, sample_rate: int, rate: int) -> torch.Tensor:
    """The waveform as if recorded at `rate` Hz and resampled to `sample_rate`: nothing above
    rate / 2 (telephone and 8 kHz corpora read by a 16 kHz model). Same length."""
    if not 0 < rate <= sample_rate:
        raise ValueError(f"a band limit must be a sample rate in (0, {sample_rate}], got {rate}")
    if rate == sample_rate:
        return waveform
    return resample(resample(waveform, sample_rate, rate), rate, sample_rate)[..., : waveform.shape[-1]]


def speed_perturb(waveform: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Kaldi/sox `speed`: resample as if recorded at sample_rate * factor, keep playing at sample_rate.

    Tempo and pitch both scale by `factor`; the length becomes about len / factor.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return waveform
    return resample(waveform, round(sample_rate * factor), sample_rate)
