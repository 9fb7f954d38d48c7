"""Voice activity detection for cutting long recordings at pauses (`asr transcribe --vad
silero`, the `vad` extra): silero-vad's model, whose wheel ships its weights, marks each 32 ms
of audio as speech or not while the audio streams past, and the segmenter reads pauses from
those marks instead of from the acoustic model's blank posteriors.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Iterator

import torch

from .longform import VADS, blank_runs

_WINDOW = {16000: 512, 8000: 256}  # samples the silero model reads at a time


def load_vad(name: str) -> torch.nn.Module:
    """The VAD model `name` (one of `VADS`), loaded once for all the files of a job."""
    if name not in VADS:
        raise ValueError(f"unknown VAD {name!r}; choose from {', '.join(VADS)}")
    try:
        from silero_vad import load_silero_vad
    except ImportError:
        raise ImportError("--vad silero needs silero-vad: pip install 'asr[vad]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)  # silero-vad's use of importlib.resources.path
        return load_silero_vad()


class SpeechTrack:
    """One file's speech marks by `model` (`load_vad`), filled as its audio blocks pass
    through `follow`; `pauses` reads them per encoder frame. Speech shorter than
    `min_speech_seconds` inside silence (a click, a breath) is dropped once the silence after
    it is seen. One model serves the files of a job one after another."""

    def __init__(self, model: torch.nn.Module, sample_rate: int, threshold: float = 0.5,
                 min_speech_seconds: float = 0.1):
        if sample_rate not in _WINDOW:
            raise ValueError(f"silero-vad reads 8 or 16 kHz audio, not {sample_rate} Hz")
        self.model, self.rate, self.window, self.threshold = model, sample_rate, _WINDOW[sample_rate], threshold
        self.min_speech = max(1, round(min_speech_seconds * sample_rate / self.window))
        self.speech = torch.zeros(0, dtype=torch.bool)
        self._settled = 0  # marks before this are final: only a speech run still open may change
        self._rest = torch.zeros(0)

    def follow(self, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The blocks unchanged, marking their speech on the way (the last partial window of
        the file is marked as the one before it)."""
        self.model.reset_states()
        for block in blocks:
            self._mark(block)
            yield block

    def _mark(self, block: torch.Tensor) -> None:
        samples = torch.cat([self._rest, block.reshape(-1).float()])
        whole = len(samples) // self.window * self.window
        self._rest = samples[whole:]
        if not whole:
            return
        with torch.no_grad():
            probabilities = [float(self.model(window, self.rate)) for window in samples[:whole].split(self.window)]
        marks = torch.tensor(probabilities) >= self.threshold
        tail = _drop_short_runs(torch.cat([self.speech[self._settled:], marks]), self.min_speech)
        self.speech = torch.cat([self.speech[:self._settled], tail])
        starts, lengths = blank_runs(tail)
        still_open = len(starts) and int(starts[-1] + lengths[-1]) == len(tail)
        self._settled += int(starts[-1]) if still_open else len(tail)

    def pauses(self, first: int, count: int, frame_seconds: float) -> torch.Tensor:
        """Whether encoder frames first .. first + count - 1 are outside speech (a frame is
        read at its centre; frames past the audio marked so far count as speech)."""
        centres = (torch.arange(first, first + count, dtype=torch.float64) + 0.5) * frame_seconds
        windows = (centres * self.rate / self.window).long()
        known = windows < len(self.speech)
        result = torch.zeros(count, dtype=torch.bool)
        result[known] = ~self.speech[windows[known]]
        return result


def _drop_short_runs(speech: torch.Tensor, shortest: int) -> torch.Tensor:
    """Speech runs shorter than `shortest` windows become silence, except a run still open at
    the end (it may grow)."""
    starts, lengths = blank_runs(speech)
    short = (lengths < shortest) & (starts + lengths < len(speech))
    if bool(short.any()):
        cleared = torch.zeros(len(speech) + 1, dtype=torch.int64)
        cleared.index_add_(0, starts[short], torch.ones_like(starts[short]))
        cleared.index_add_(0, (starts + lengths)[short], -torch.ones_like(starts[short]))
        speech = speech & ~cleared.cumsum(0)[:-1].bool()
    return speech
