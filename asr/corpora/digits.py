"""A spoken-digits corpus synthesized on the spot with eSpeak NG: no download, no network.

Each utterance is a random string of 1-7 digits (ZERO .. NINE) spoken by a random English
eSpeak voice and variant at a random rate, pitch and pitch range, padded with silence and
mixed with white or brown noise at a random SNR. The draws of utterance i of a split depend
only on (seed, split, i), so a corpus's texts, voices and noise are reproducible and splits
never share a draw. A fresh run writes the same files byte for byte; a resumed one may differ
by a few samples in the files it adds (eSpeak keeps some state from one utterance to the next).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import soundfile
import torch

from ..data import Utterance
from ..espeak import ENGLISH_VOICES, VARIANTS, Voice, synthesizer
from ..features import resample

WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
MAX_DIGITS = 7


def random_voice(rng: np.random.Generator) -> Voice:
    return Voice(name=str(rng.choice(ENGLISH_VOICES)), variant=str(rng.choice(VARIANTS)),
                 rate=int(rng.integers(120, 261)), pitch=int(rng.integers(20, 81)),
                 range=int(rng.integers(20, 91)), word_gap=int(rng.integers(0, 6)))


def _noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """White or brown (integrated, high-passed by mean removal) unit-power noise."""
    noise = rng.standard_normal(num_samples)
    if rng.random() < 0.5:
        noise = np.cumsum(noise)
        noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # keep it from drifting
    return noise / max(np.sqrt(np.mean(noise**2)), 1e-12)


def render(text: str, voice: Voice, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Synthesize `text`, resample to `sample_rate`, pad 0.1-0.5 s of silence on each side and
    add noise at 5-35 dB SNR; float32 in [-1, 1]."""
    speech = synthesizer()(text.lower(), voice, seed=int(rng.integers(2**31)))
    speech = resample(torch.from_numpy(speech), synthesizer().sample_rate, sample_rate).numpy()
    pad = rng.uniform(0.1, 0.5, size=2) * sample_rate
    speech = np.concatenate([np.zeros(int(pad[0])), speech, np.zeros(int(pad[1]))])
    power = np.mean(speech**2)
    snr_db = rng.uniform(5.0, 35.0)
    mixed = speech + _noise(rng, speech.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return (mixed / max(1.0, np.abs(mixed).max() / 0.99)).astype(np.float32)


def utterance_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def synthesize(folder: str | Path, sizes: dict[str, int], seed: int = 0, sample_rate: int = 16000,
               progress=None) -> dict[str, list[Utterance]]:
    """Write sizes[split] wav files per split under folder/split/ and return their utterances.

    Files already present (from an interrupted run) are kept, not synthesized again. `progress`
    (e.g. a tqdm) is updated once per utterance.
    """
    splits = {}
    for split, size in sizes.items():
        out = Path(folder) / split
        out.mkdir(parents=True, exist_ok=True)
        splits[split] = []
        for index in range(size):
            rng = utterance_rng(seed, split, index)
            digits = rng.integers(0, 10, size=int(rng.integers(1, MAX_DIGITS + 1)))
            text = " ".join(WORDS[d] for d in digits)
            voice = random_voice(rng)
            path = out / f"{split}-{index:05d}.wav"
            if path.exists():
                num_samples = soundfile.info(str(path)).frames
            else:
                audio = render(text, voice, rng, sample_rate)
                partial = path.with_suffix(".partial.wav")
                soundfile.write(str(partial), audio, sample_rate, subtype="PCM_16")
                partial.replace(path)  # whole files only, so a rerun can trust what it finds
                num_samples = audio.size
            splits[split].append(Utterance(path.stem, str(path.resolve()), num_samples / sample_rate, text,
                                           voice.full_name))
            if progress is not None:
                progress.update()
    return splits
