"""Speech synthesis with eSpeak NG (the library and voices shipped by the PyPI package
`espeakng-loader`), for offline demos and tests that need speech-like audio without data.

eSpeak's C API is process-global, so one `Synthesizer` per process is created lazily and
shared; it is not thread-safe (DataLoader worker processes each get their own). eSpeak seeds
its random draws (the breath noise of some voices) from the clock and its wave generator keeps
state from one call to the next: each call restarts the draws from a given seed, so a process
that makes the same calls in the same order writes the same samples.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS, samples go to the callback
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE, _WORDGAP = 1, 3, 4, 7  # espeak_PARAMETER
_EE_OK = 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# English voices of the shipped data and the voice variants ("+name") that change the timbre.
ENGLISH_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "Andy", "Annie", "david", "ed", "john", "linda", "max", "michel", "norbert")


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice: `name` (e.g. "en-us") with an optional `variant` (e.g. "f2"), speaking
    `rate` words per minute (80-450) at `pitch` 0-100 with pitch `range` 0-100."""

    name: str = "en-us"
    variant: str | None = None
    rate: int = 175
    pitch: int = 50
    range: int = 50
    word_gap: int = 0  # extra pause between words, in units of 10 ms

    @property
    def full_name(self) -> str:
        return self.name if self.variant is None else f"{self.name}+{self.variant}"


class Synthesizer:
    """Text -> float32 waveform in [-1, 1] at `sample_rate` (22,050 Hz for eSpeak NG)."""

    def __init__(self):
        import espeakng_loader

        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialize with its data at {data.decode()}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: eSpeak calls it later
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # continue synthesis

    def __call__(self, text: str, voice: Voice = Voice(), seed: int = 0) -> np.ndarray:
        """`text` spoken by `voice`, eSpeak's random draws started from `seed`."""
        if self._lib.espeak_SetVoiceByName(voice.full_name.encode()) != _EE_OK:
            raise ValueError(f"eSpeak NG has no voice {voice.full_name!r}")
        for parameter, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.range),
                                 (_WORDGAP, voice.word_gap)):
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(seed)
        encoded = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise RuntimeError(f"eSpeak NG could not synthesize {text!r} (error {status})")
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def synthesizer() -> Synthesizer:
    """The process's shared `Synthesizer`."""
    return Synthesizer()
