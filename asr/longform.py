"""Recordings of any length in bounded memory: the encoder runs over overlapping windows of
features whose middle frames are stitched into one emission stream (as NeMo's buffered CTC
inference and fairseq's long-audio alignment do), and that stream is cut at pauses into
segments, which are what the searches decode.

For a model with windowed attention the context each side of a window is its receptive
field, so the stitched emissions equal a whole-file pass; a full-attention model sees
`ChunkOptions.context_seconds` each side instead (an approximation, as in NeMo).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import torch

from .model import TransformerEncoder

FULL_ATTENTION_CONTEXT_SECONDS = 2.0


@dataclass
class ChunkOptions:
    """Windows of `chunk_seconds` of encoder output (plus context each side) at a time.
    `context_seconds=None` is exact for windowed models (their receptive field) and
    FULL_ATTENTION_CONTEXT_SECONDS for full-attention ones. `encode_segments` encodes each
    segment found again on its own before it is searched, as a VAD-segmented pipeline does
    (None: for full-attention models, which were trained on single utterances and recognize
    one far better alone than inside a window of its neighbours; a windowed model's chunked
    emissions are exact already)."""

    chunk_seconds: float = 30.0
    context_seconds: float | None = None
    encode_segments: bool | None = None

    def __post_init__(self):
        if self.chunk_seconds <= 0 or (self.context_seconds is not None and self.context_seconds < 0):
            raise ValueError(f"chunk_seconds must be > 0 and context_seconds >= 0, got {self.chunk_seconds} and "
                             f"{self.context_seconds}")


VADS = ("silero",)  # voice activity detectors `SegmentOptions.vad` may name (asr.vad)


@dataclass
class SegmentOptions:
    """Where the emission stream is cut for decoding (WeNet's endpoint rules): a pause (a run of
    frames whose best token is blank) of `pause_seconds` after speech ends a segment, and a
    segment reaching `max_segment_seconds` is cut in the middle of its longest pause. With
    `vad` (one of `VADS`, the `vad` extra) a pause is a stretch that VAD marks as no speech."""

    pause_seconds: float = 0.8
    max_segment_seconds: float = 30.0
    vad: str | None = None

    def __post_init__(self):
        if self.pause_seconds <= 0 or self.max_segment_seconds <= self.pause_seconds:
            raise ValueError(f"need 0 < pause_seconds < max_segment_seconds, got {self.pause_seconds} and "
                             f"{self.max_segment_seconds}")
        if self.vad is not None and self.vad not in VADS:
            raise ValueError(f"unknown VAD {self.vad!r}; choose from {', '.join(VADS)}")


@dataclass
class Window:
    """Input features of one encoder window of a file; its outputs `keep_from` to
    `keep_from + keep` are the file's output frames `first_frame` onwards. `last` marks the
    file's final window; `owner` is whatever the caller attached (its file)."""

    features: torch.Tensor
    keep_from: int
    keep: int
    first_frame: int
    last: bool
    owner: Any = None


class FeatureTape:
    """A file's features from a frame on, recorded as they stream past, so that a segment can
    be encoded again on its own; `forget_before` keeps memory at about a segment."""

    def __init__(self, model: TransformerEncoder):
        self.factor, self.span = model.config.subsampling, model.subsampling.min_length
        self.buffer: torch.Tensor | None = None
        self.base = 0  # input frame of buffer[0]

    def record(self, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The blocks, passed through and kept."""
        for block in blocks:
            self.buffer = block if self.buffer is None else torch.cat([self.buffer, block])
            yield block

    def segment(self, first: int, count: int) -> torch.Tensor:
        """The input features whose encoding alone gives output frames first..first+count-1."""
        start = self.factor * first - self.base
        return self.buffer[start:start + self.factor * (count - 1) + self.span]

    def forget_before(self, frame: int) -> None:
        """Drop the features only output frames before `frame` read."""
        drop = self.factor * frame - self.base
        if drop > 0 and self.buffer is not None:
            self.buffer, self.base = self.buffer[drop:], self.base + drop


def context_frames(model: TransformerEncoder, frame_seconds: float, options: ChunkOptions) -> int:
    """Output frames of context each side of a window: a windowed model's receptive field
    (attention window plus the conformer's convolution reach, per layer) unless given."""
    if options.context_seconds is not None:
        return round(options.context_seconds / frame_seconds)
    config = model.config
    if config.attention_window:
        conv_reach = config.conv_kernel // 2 if config.architecture == "conformer" else 0
        return config.num_layers * (config.attention_window + conv_reach)
    return round(FULL_ATTENTION_CONTEXT_SECONDS / frame_seconds)


def feature_windows(blocks: Iterable[torch.Tensor], model: TransformerEncoder, chunk: int, context: int,
                    owner: Any = None) -> Iterator[Window]:
    """Encoder windows over a file's feature blocks [n, F] (as `Fbank.stream` gives them), each
    for `chunk` output frames with `context` output frames each side; only the features the
    next window needs are kept."""
    factor, span = model.config.subsampling, model.subsampling.min_length
    blocks = iter(blocks)
    buffer, base, frame, ended = None, 0, 0, False  # base: file frame of buffer[0]; frame: next output frame
    while True:
        needed = factor * (frame + chunk + context - 1) + span  # input frames the window's last output reads
        while not ended and (buffer is None or base + len(buffer) < needed):
            block = next(blocks, None)
            if block is None:
                ended = True
            else:
                buffer = block if buffer is None else torch.cat([buffer, block])
        if buffer is None:
            return
        available = base + len(buffer)
        total = int(model.output_lengths(torch.tensor(available))) if ended else None
        if total is not None and frame >= total:
            return
        start = factor * max(0, frame - context)
        keep = chunk if total is None else min(chunk, total - frame)
        last = total is not None and frame + keep >= total
        features = buffer[start - base:min(needed, available) - base]
        yield Window(features, frame - start // factor, keep, frame, last, owner)
        frame += keep
        drop = factor * max(0, frame - context) - base
        buffer, base = buffer[drop:], base + drop


@torch.no_grad()
def encode_windows(model: TransformerEncoder, windows: Iterable[Window], batch_size: int, device: torch.device
                   ) -> Iterator[tuple[Window, torch.Tensor | None, str | None]]:
    """(window, its kept emissions [keep, V] (float64, CPU), None) in input order; windows of
    any files are encoded `batch_size` at a time. A batch that fails (out of memory, most
    likely) is retried window by window, and a window that still fails comes with None and
    the error's message instead, so the caller can skip its file and go on."""
    batch: list[Window] = []
    for window in windows:
        batch.append(window)
        if len(batch) == batch_size:
            yield from _encode(model, batch, device)
            batch = []
    if batch:
        yield from _encode(model, batch, device)


def _encode(model: TransformerEncoder, batch: list[Window], device: torch.device):
    try:
        lengths = torch.tensor([len(w.features) for w in batch])
        padded = torch.nn.utils.rnn.pad_sequence([w.features for w in batch], batch_first=True).to(device)
        log_probs = model(padded, lengths.to(device))[0].cpu().double()
    except (RuntimeError, MemoryError) as error:
        if len(batch) == 1:
            yield batch[0], None, f"encoding failed: {error}"
        else:
            for window in batch:
                yield from _encode(model, [window], device)
        return
    for row, window in zip(log_probs, batch):
        yield window, row[window.keep_from:window.keep_from + window.keep], None


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None on other C libraries."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Hand memory freed by the C allocator back to the system. glibc keeps freed blocks of
    the varying sizes a search allocates in its heap, so without this a process decoding an
    hour grows by a third over one decoding ten minutes (measured: peak RSS 1.24 GiB against
    0.91 GiB at 30 minutes for a conformer with an LM graph) though it holds no more data."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def blank_runs(is_blank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(start, length) of each maximal run of True in a boolean vector."""
    padded = torch.nn.functional.pad(is_blank.to(torch.int8), (1, 1))
    change = padded[1:] - padded[:-1]
    starts = torch.nonzero(change == 1).flatten()
    ends = torch.nonzero(change == -1).flatten()
    return starts, ends - starts


class Segmenter:
    """Cuts one file's emission stream into segments at pauses (`SegmentOptions`), holding at
    most a segment's frames: `push` each chunk of emissions [n, V] in order, then `finish`.
    Both return the finished segments as (first frame, emissions, breaks); once the stream is
    longer than a segment, stretches with no speech (every frame's best token blank) are
    dropped. A stream of at most `max_segment_seconds` is one segment: a short file is searched
    whole, as it would be on its own (a full-attention encoder hears it whole, and a blank run
    inside a word cuts nothing); its pauses become `breaks`, the frames where the phrases
    the stream would have been cut into begin (for display). A longer stream is cut at the
    same frames as if it had been cut from the start. `blank` is the label whose runs are
    pauses; with None (a model without one) segments are cut at the maximum length only.
    `pauses(first, count)`, when given, says instead which frames are pauses (a VAD's marks,
    `asr.vad.SpeechTrack`): they are silence heard, not guessed, so every stream is cut there.
    With `keep_dropped`, the dropped frames are kept (`dropped_stretches`), for an aligner to
    look there for words the search did not hear."""

    def __init__(self, options: SegmentOptions, frame_seconds: float, blank: int | None = 0,
                 pauses: Callable[[int, int], torch.Tensor] | None = None, keep_dropped: bool = False):
        self.pause = max(1, round(options.pause_seconds / frame_seconds))
        self.longest = max(self.pause + 1, round(options.max_segment_seconds / frame_seconds))
        self.blank, self.pauses = blank, pauses
        self.buffer: torch.Tensor | None = None
        self.first = 0  # file frame of buffer[0]
        self.cut_before = False  # whether a segment was cut off or silence dropped already
        self.dropped: list[tuple[int, torch.Tensor]] | None = [] if keep_dropped else None

    def push(self, emissions: torch.Tensor) -> list[tuple[int, torch.Tensor, list[int]]]:
        self.buffer = emissions if self.buffer is None else torch.cat([self.buffer, emissions])
        segments = []
        while (cut := self._cut()) is not None:
            segments.append((self.first, self.buffer[:cut], []))
            self.buffer, self.first, self.cut_before = self.buffer[cut:], self.first + cut, True
        return segments

    def finish(self) -> list[tuple[int, torch.Tensor, list[int]]]:
        """The last segment. A stream that was never cut is one segment even without speech,
        as a short file decoded whole would be (a grammar may insist on a word)."""
        buffer, self.buffer = self.buffer, None
        if buffer is None:
            return []
        is_blank = self._is_blank(buffer)
        if self.cut_before and bool(is_blank.all()):
            self._drop(self.first, buffer)
            return []
        return [(self.first, buffer, [] if self.cut_before else self._breaks(is_blank))]

    def _breaks(self, is_blank: torch.Tensor) -> list[int]:
        """Where the phrases of a never-cut stream begin: each pause between speech ends one,
        at the frame a cut would have been made."""
        speech = torch.nonzero(~is_blank).flatten()
        if not speech.numel():
            return []
        starts, lengths, _, is_pause = self._runs(is_blank, speech)
        inner = is_pause & (starts + lengths < len(is_blank))
        return (starts[inner] + self.pause // 2).tolist()

    def _runs(self, is_blank: torch.Tensor, speech: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The blank runs (starts, lengths), which of them come after the first speech frame,
        and which of those are long enough to be a pause."""
        starts, lengths = blank_runs(is_blank)
        after_speech = starts > speech[0]
        return starts, lengths, after_speech, after_speech & (lengths >= self.pause)

    def dropped_stretches(self) -> list[tuple[int, torch.Tensor]]:
        """The dropped frames (with `keep_dropped`) as (first frame, emissions), one per pause."""
        stretches: list[tuple[int, list[torch.Tensor]]] = []
        end = None
        for first, emissions in self.dropped or []:
            if first == end:
                stretches[-1][1].append(emissions)
            else:
                stretches.append((first, [emissions]))
            end = first + len(emissions)
        return [(first, torch.cat(pieces)) for first, pieces in stretches]

    def _drop(self, first: int, emissions: torch.Tensor) -> None:
        if self.dropped is not None:
            self.dropped.append((first, emissions))

    def _is_blank(self, emissions: torch.Tensor) -> torch.Tensor:
        """Whether each frame of `emissions` (file frames from `first` on) is a pause: its best
        label is the pause label, or the `pauses` marks say so."""
        if self.pauses is not None:
            return self.pauses(self.first, len(emissions)).to(emissions.device)
        if self.blank is None:
            return torch.zeros(len(emissions), dtype=torch.bool, device=emissions.device)
        return emissions.argmax(-1) == self.blank

    def _cut(self) -> int | None:
        """Where the buffer's first segment ends, or None while it may still grow."""
        is_blank = self._is_blank(self.buffer)
        speech = torch.nonzero(~is_blank).flatten()
        lead = self.pause // 2  # blank frames kept before a segment's speech
        first_speech = int(speech[0]) if speech.numel() else None
        drop = (len(self.buffer) if first_speech is None else first_speech) - lead
        if drop > 0 and (self.cut_before or (first_speech or len(self.buffer)) > self.longest):
            # silence: keep only the lead-in (at the start of a stream only once it is longer than a segment)
            self._drop(self.first, self.buffer[:drop])
            self.buffer, self.first, is_blank, speech = self.buffer[drop:], self.first + drop, is_blank[drop:], speech - drop
            self.cut_before = True
        if not speech.numel():
            return None
        if len(self.buffer) <= self.longest and not self.cut_before and self.pauses is None:
            return None  # it may still end within a segment's length: then it is searched whole
        starts, lengths, after_speech, is_pause = self._runs(is_blank, speech)
        # Decisions depend on the frames only, not on how they were pushed: a pause counts when
        # it is complete within the segment's first `longest` + 1 frames.
        pauses = torch.nonzero(is_pause & (starts + self.pause <= self.longest + 1))
        if pauses.numel():
            return int(starts[pauses[0, 0]]) + self.pause // 2
        if len(self.buffer) <= self.longest:
            return None
        inside = after_speech & (starts < self.longest)
        if not bool(inside.any()):
            return self.longest
        lengths = torch.where(inside, lengths.clamp(max=self.longest - starts), 0)
        best = int(torch.argmax(lengths))
        return int(starts[best]) + max(1, int(lengths[best]) // 2)
