"""Transcribe and align audio files of any length with a trained model directory: audio read
in blocks, the encoder over windows of many files at once (`asr.longform`), segments cut at
pauses searched in batches with any `asr.decoding` search, and transcripts with word times in
the formats people use.

A file that cannot be read or decoded is reported and skipped (`Transcript.error`), the rest
are decoded; audio too short for one encoder frame (empty files included) gets an empty
transcript.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter, deque
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from .anchoring import TranscriptSplit, split_transcript
from .audio import AudioError, EmptyAudioError, stream_audio
from .data import read_manifest
from .decoding import Decoder, ForcedAligner, Hypothesis
from .lm import UNK
from .longform import (
    ChunkOptions,
    FeatureTape,
    Segmenter,
    SegmentOptions,
    Window,
    context_frames,
    encode_windows,
    feature_windows,
    release_freed_memory,
)
from .model_dir import ModelDir
from .plots import plot_alignment
from .subtitles import SubtitleOptions, make_cues, to_srt, to_vtt
from .vad import SpeechTrack, load_vad

log = logging.getLogger("asr.transcribe")

AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".mp3", ".ogg", ".opus", ".m4a")
FORMATS = ("txt", "json", "ctm", "srt", "vtt")
SETTLED_WORDS = 8  # a segment border with more unanchored words around it keeps its interpolated place
PAUSE_REACH_SECONDS = 30.0  # how far into a skipped pause an aligned segment reaches, either side


@dataclasses.dataclass
class TokenSpan:
    """A token of the path taken and its start and end seconds."""

    token: str
    start: float
    end: float


@dataclasses.dataclass
class Segment:
    """A stretch of a file searched as one (`asr.longform.Segmenter`): the transcript's words
    `first` to `first + count`, and the search's n best (text, score) for it, when kept;
    `breaks`: the words (from `first`) that begin a phrase after a pause inside it."""

    first: int
    count: int
    alternatives: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    breaks: list[int] = dataclasses.field(default_factory=list)

    def phrases(self) -> list[tuple[int, int]]:
        """(first word, count) of each phrase: the segment split at its breaks."""
        edges = [self.first, *(self.first + b for b in self.breaks), self.first + self.count]
        return [(a, b - a) for a, b in zip(edges[:-1], edges[1:])]


@dataclasses.dataclass
class Transcript:
    """One file's result: words with start/end seconds (and the path's tokens with theirs),
    the segments they were found in, or `error` when it could not be read or decoded."""

    id: str
    audio: str
    words: list[str] = dataclasses.field(default_factory=list)
    starts: list[float] = dataclasses.field(default_factory=list)
    ends: list[float] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    error: str | None = None
    tokens: list[TokenSpan] = dataclasses.field(default_factory=list)
    segments: list[Segment] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def alternatives(self) -> list[tuple[str, float]]:
        """The n best (text, score) of a file searched as one segment; [] otherwise (each
        segment has its own)."""
        return self.segments[0].alternatives if len(self.segments) == 1 else []


def find_inputs(arguments: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(utterance id, audio path) for each argument: an audio file (id: its stem), a directory
    (its audio files, recursively, ids relative to it), a Kaldi `wav.scp` (`id path` lines) or
    a JSONL manifest (`.jsonl`). A missing argument is a ValueError naming it."""
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
                yield file.relative_to(path).with_suffix("").as_posix().replace("/", "-"), str(file)
        elif path.suffix == ".jsonl":
            yield from ((u.id, u.audio) for u in read_manifest(path))
        elif path.name.endswith(".scp"):
            yield from _read_wav_scp(path)
        elif path.exists() or path.suffix.lower() in AUDIO_SUFFIXES:
            yield path.stem, str(path)  # a missing audio file is reported when it is read
        else:
            raise ValueError(f"{argument}: no such file or directory")


def _read_wav_scp(path: Path) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2:
            raise ValueError(f"{path}, line {number}: expected `utterance-id audio-path`")
        if fields[1].rstrip().endswith("|"):
            raise ValueError(f"{path}, line {number}: piped commands are not supported, only file paths")
        yield fields[0], fields[1].strip()


@dataclasses.dataclass
class _File:
    """A file on its way through `Recognizer`: its transcript, its segmenter, and how much of it
    is still to come (windows not yet encoded, segments not yet decoded)."""

    transcript: Transcript
    segmenter: Segmenter | None = None
    encoded: bool = False
    pending: int = 0
    kept: list[tuple[int, torch.Tensor]] | None = None  # (first frame, emissions) of each segment, to align
    tape: FeatureTape | None = None  # its recent features, when segments are encoded again alone

    @property
    def done(self) -> bool:
        return self.encoded and not self.pending


class _Queued(NamedTuple):
    """A segment waiting for the search: its file, first frame, emissions (or features, to be
    encoded alone) and phrase breaks (frames from `first`, `asr.longform.Segmenter`)."""

    file: _File
    first: int
    frames: torch.Tensor
    breaks: list[int]


def _word_breaks(hypothesis: Hypothesis, breaks: Sequence[int]) -> list[int]:
    """The words that begin a phrase: for each break frame, the first word starting at or
    after it (none when it falls after the last word or two breaks share a word)."""
    starts = [a for a, _ in hypothesis.spans]
    found = sorted({int(np.searchsorted(starts, frame)) for frame in breaks})
    return [k for k in found if 0 < k < len(starts)]


class Recognizer:
    """Decoding of audio files of any length with a `ModelDir` on `device`. `transcribe` reads
    each file in blocks, runs the encoder over windows (`chunk`) of many files at once, cuts
    each file's emissions into segments at pauses (`segments`) and searches them with
    `decoder` (default: the directory's own search, `ModelDir.decoder()`), so memory does not
    grow with a file's length; `align` force-aligns known transcripts over whole files."""

    def __init__(self, saved: ModelDir, decoder: Decoder | None = None, device: str = "cpu",
                 chunk: ChunkOptions | None = None, segments: SegmentOptions | None = None):
        self.saved, self.device = saved, torch.device(device)
        self.model = saved.model.to(self.device)
        self.decoder = decoder or saved.decoder()
        self.chunk_options, self.segment_options = chunk or ChunkOptions(), segments or SegmentOptions()
        step = saved.frame_seconds
        self.chunk = max(1, round(self.chunk_options.chunk_seconds / step))
        self.context = context_frames(self.model, step, self.chunk_options)
        encode_segments = self.chunk_options.encode_segments
        self.encode_segments = not self.model.config.attention_window if encode_segments is None else encode_segments
        vad = self.segment_options.vad
        self.vad = None if vad is None else load_vad(vad)

    def transcribe(self, inputs: Iterable[tuple[str, str]], batch_size: int = 8) -> Iterator[Transcript]:
        """Transcripts in input order, each as soon as it and those before it are done; encoder
        windows and segments go `batch_size` at a time."""
        return (file.transcript for file in self._files(inputs, batch_size))

    def _files(self, inputs: Iterable[tuple[str, str]], batch_size: int, keep: bool = False) -> Iterator[_File]:
        """The files decoded, in input order (`keep`: each with its segments' emissions)."""
        files: deque[_File] = deque()
        queue: list[_Queued] = []  # segments waiting for the search
        for window, emissions, error in self._encoded(inputs, files, batch_size, keep, tape=self.encode_segments):
            file = window.owner
            if error:
                file.transcript.error = error
            elif not file.transcript.error:
                found = file.segmenter.push(emissions) + (file.segmenter.finish() if window.last else [])
                if file.tape is not None:  # the segment's features, to be encoded alone
                    found = [(first, file.tape.segment(first, len(segment)), breaks) for first, segment, breaks in found]
                    file.tape.forget_before(file.segmenter.first)
                queue += [_Queued(file, *segment) for segment in found]
                file.pending += len(found)
            file.encoded = file.encoded or window.last
            while len(queue) >= batch_size:
                self._decode(queue[:batch_size])
                queue = queue[batch_size:]
                release_freed_memory()
            yield from _finished(files)
        for start in range(0, len(queue), batch_size):
            self._decode(queue[start:start + batch_size])
        yield from _finished(files)

    def texts(self, inputs: Iterable[tuple[str, str]], batch_size: int = 16) -> dict[str, str]:
        """Utterance id -> transcript text of every file decoded; a file that fails is logged
        and left out (a scorer counts it as all deletions)."""
        texts = {}
        for transcript in self.transcribe(inputs, batch_size):
            if transcript.error:
                log.warning("could not decode %s: %s", transcript.audio, transcript.error)
            else:
                texts[transcript.id] = transcript.text
        return texts

    def align(self, inputs: Iterable[tuple[str, str]], texts: Mapping[str, Sequence[str]], batch_size: int = 8,
              plot_dir: str | Path | None = None) -> Iterator[Transcript]:
        """Each file aligned with `texts[utterance id]` (its words; a word without a spelling
        becomes `<unk>` with a warning when the lexicon has `<unk>`, else the file fails, as
        does a transcript that cannot fit the audio); `plot_dir` receives ID.png per file
        (ID-K.png per segment K of a file cut into several).

        A file is decoded in segments first, as `transcribe` does; the words recognized anchor
        the transcript to the segments (`asr.anchoring.split_transcript`), and each segment is
        aligned with its share of it, so the alignment lattice is a segment's, not the file's
        (the file's emissions are kept until it is aligned). Each segment is aligned together
        with the pauses beside it that the search skipped, so a word it did not hear there is
        still placed where it was said."""
        files: list[_File] = []
        for file in self._files(inputs, batch_size, keep=True):
            files.append(file)
            if len(files) == batch_size:
                yield from self._align(files, texts, batch_size, plot_dir)
                files = []
        yield from self._align(files, texts, batch_size, plot_dir)

    def _align(self, files: list[_File], texts: Mapping[str, Sequence[str]], batch_size: int,
               plot_dir: str | Path | None) -> Iterator[Transcript]:
        """The files' recognized words replaced with their transcripts aligned segment by
        segment; the segments of all the files are aligned `batch_size` at a time."""
        units = []  # (file, first frame, emissions, words) of every segment to align
        for file in files:
            if not file.transcript.error and (words := self._words_to_align(file.transcript, texts)) is not None:
                spans = _widened(file, self.saved.frame_seconds)
                parts = self._shares(file, spans, words, batch_size)
                if parts is not None:
                    units += [(file, first, emissions, part) for (first, emissions), part in zip(spans, parts) if part]
                    file.transcript.words, file.transcript.starts, file.transcript.ends = [], [], []
                    file.transcript.tokens, file.transcript.segments = [], []
        hypotheses = [h for start in range(0, len(units), batch_size)
                      for h in self._force_align([(e, part) for _, _, e, part in units[start:start + batch_size]])]
        counts = Counter(id(file) for file, _, _, _ in units)  # segments to align per file
        for (file, first, emissions, part), hypothesis in zip(units, hypotheses):
            transcript = file.transcript
            if transcript.error:
                continue
            if not hypothesis.found:
                where = f" (the segment at {first * self.saved.frame_seconds:.1f} s)" if counts[id(file)] > 1 else ""
                transcript.error = f"the transcript does not fit the audio{where}"
                continue
            transcript.segments.append(Segment(len(transcript.words), len(part), []))
            self._append(transcript, hypothesis, first)
            if plot_dir:
                name = transcript.id if counts[id(file)] == 1 else f"{transcript.id}-{len(transcript.segments) - 1}"
                plot_alignment(Path(plot_dir) / f"{name}.png", emissions, hypothesis, self.saved.tokens,
                               _segment_view(transcript, first * self.saved.frame_seconds), self.saved.frame_seconds)
        yield from (file.transcript for file in files)

    def _shares(self, file: _File, spans: list[tuple[int, torch.Tensor]], words: list[str], batch_size: int
                ) -> list[list[str]] | None:
        """The words of the transcript each of the file's segments (`spans`: first frame,
        emissions) holds (None, and the file's error set, when nothing recognized anchors them)."""
        if len(spans) == 1 or not words:
            return [words] + [[] for _ in spans[1:]]
        recognized = [file.transcript.words[s.first:s.first + s.count] for s in file.transcript.segments]
        split = split_transcript(words, recognized)
        if split is None:
            file.transcript.error = "nothing was recognized in it to anchor the transcript to"
            return None
        cuts = self._settle_borders(split, [e for _, e in spans], words, batch_size)
        return [words[a:b] for a, b in zip(cuts[:-1], cuts[1:])]

    def _settle_borders(self, split: TranscriptSplit, emissions: list[torch.Tensor], words: list[str],
                        batch_size: int) -> np.ndarray:
        """The split's cuts, each border that words missed by the recognizer leave free (at most
        `SETTLED_WORDS` of them) moved to where the two segments beside it align best."""
        cuts = split.cuts.copy()
        for k in range(1, len(emissions)):
            low, high = max(split.lowest[k], cuts[k - 1]), min(split.highest[k], cuts[k + 1])
            if not 0 < high - low <= SETTLED_WORDS:
                continue
            candidates = np.arange(low, high + 1)
            units = ([(emissions[k - 1], words[cuts[k - 1]:c]) for c in candidates]
                     + [(emissions[k], words[c:cuts[k + 1]]) for c in candidates])
            scores = torch.tensor([h.score for start in range(0, len(units), batch_size)
                                   for h in self._force_align(units[start:start + batch_size])])
            cuts[k] = candidates[int(torch.argmax(scores[:len(candidates)] + scores[len(candidates):]))]
        return cuts

    def _force_align(self, units: list[tuple[torch.Tensor, list[str]]]) -> list[Hypothesis]:
        """Each (emissions, words) aligned; one batch."""
        lengths = torch.tensor([len(e) for e, _ in units])
        padded = torch.nn.utils.rnn.pad_sequence([e for e, _ in units], batch_first=True)
        return ForcedAligner([part for _, part in units], self.saved.graph.spell,
                             self.saved.graph.topology)(padded, lengths)

    def _words_to_align(self, transcript: Transcript, texts: Mapping[str, Sequence[str]]) -> list[str] | None:
        """The transcript's words as the lexicon spells them, or None (and `error` set)."""
        if transcript.id not in texts:
            transcript.error = "no transcript for this utterance id"
            return None
        spellings = self.saved.graph.spellings
        words = []
        for word in texts[transcript.id]:
            if word in spellings:
                words.append(word)
            elif UNK in spellings:
                log.warning("%s: %r is not in the lexicon, aligned as %s", transcript.id, word, UNK)
                words.append(UNK)
            else:
                transcript.error = f"word {word!r} is not in the lexicon (and it has no {UNK})"
                return None
        return words

    def _encoded(self, inputs: Iterable[tuple[str, str]], files: deque[_File], batch_size: int, keep: bool = False,
                 tape: bool = False) -> Iterator[tuple[Window, torch.Tensor | None, str | None]]:
        """`encode_windows` over every file's windows; each file opened is appended to `files`
        (`keep`: with a list for its segments' emissions; `tape`: recording its features)."""
        return encode_windows(self.model, self._windows(inputs, files, keep, tape), batch_size, self.device)

    def _windows(self, inputs: Iterable[tuple[str, str]], files: deque[_File], keep: bool, tape: bool
                 ) -> Iterator[Window]:
        """Encoder windows of each file in turn, read block by block. A file that has none (too
        short, empty, unreadable: `error` set) is `encoded` at once; a read error mid-file
        sets `error` and ends its windows."""
        for utterance_id, path in inputs:
            speech = None if self.vad is None else SpeechTrack(self.vad, self.saved.sample_rate)
            pauses = None if speech is None else partial(speech.pauses, frame_seconds=self.saved.frame_seconds)
            segmenter = Segmenter(self.segment_options, self.saved.frame_seconds, self.saved.graph.topology.silence,
                                  pauses, keep_dropped=keep)
            file = _File(Transcript(utterance_id, path), segmenter, kept=[] if keep else None,
                         tape=FeatureTape(self.model) if tape else None)
            files.append(file)
            any_window = False
            try:
                stream = stream_audio(path, self.saved.sample_rate)
                file.transcript.duration = stream.duration
                blocks = stream.blocks if speech is None else speech.follow(stream.blocks)
                features = self.saved.featurizer.stream(blocks)
                if file.tape is not None:
                    features = file.tape.record(features)
                for window in feature_windows(features, self.model, self.chunk, self.context, file):
                    any_window = True
                    yield window
            except EmptyAudioError:
                pass
            except (AudioError, OSError) as error:
                file.transcript.error = str(error)
            if not any_window or file.transcript.error:
                file.encoded = True

    def _decode(self, segments: list[_Queued]) -> None:
        """Search a batch of segments and append each one's words to its file's transcript; a
        batch that fails (out of memory) is retried segment by segment, and a segment that
        still fails marks its file failed. Segments given as features are encoded first."""
        if self.encode_segments:
            segments = self._encode_segments(segments)
        if segments:
            self._search(segments)

    def _search(self, segments: list[_Queued]) -> None:
        try:
            lengths = torch.tensor([len(segment.frames) for segment in segments])
            padded = torch.nn.utils.rnn.pad_sequence([segment.frames for segment in segments], batch_first=True)
            hypotheses = self.decoder(padded, lengths)
        except (RuntimeError, MemoryError) as error:
            if len(segments) > 1:
                for segment in segments:
                    self._search([segment])
                return
            hypotheses = [None]
            segments[0].file.transcript.error = segments[0].file.transcript.error or f"decoding failed: {error}"
        for (file, first, emissions, breaks), hypothesis in zip(segments, hypotheses):
            file.pending -= 1
            if hypothesis is not None and not file.transcript.error:
                if file.kept is not None:
                    file.kept.append((first, emissions))
                start = len(file.transcript.words)
                self._append(file.transcript, hypothesis, first)
                file.transcript.segments.append(Segment(start, len(hypothesis.words), [
                    (" ".join(words), score) for words, score in hypothesis.alternatives], _word_breaks(hypothesis, breaks)))

    def _encode_segments(self, segments: list[_Queued]) -> list[_Queued]:
        """Segments as features -> as their emissions; one that cannot be encoded marks its file
        failed and is dropped."""
        windows = [Window(segment.frames, 0, int(self.model.output_lengths(torch.tensor(len(segment.frames)))),
                          segment.first, True, segment) for segment in segments]
        encoded = []
        for window, emissions, error in encode_windows(self.model, windows, len(windows), self.device):
            segment = window.owner
            if error:
                segment.file.pending -= 1
                segment.file.transcript.error = segment.file.transcript.error or error
            else:
                encoded.append(segment._replace(frames=emissions))
        return encoded

    def _append(self, transcript: Transcript, hypothesis: Hypothesis, first: int) -> None:
        """The hypothesis' words, token runs and their times in seconds (`first`: the frame of
        the file its frame 0 is) appended to the transcript."""
        step, tokens, end = self.saved.frame_seconds, self.saved.tokens, transcript.duration

        def seconds(frame: int, last: bool = False) -> float:
            return round(min((first + frame + last) * step, end), 3)

        transcript.words += hypothesis.words
        transcript.starts += [seconds(a) for a, _ in hypothesis.spans]
        transcript.ends += [seconds(b, last=True) for _, b in hypothesis.spans]
        transcript.tokens += [TokenSpan(tokens[token], seconds(a), seconds(b, last=True))
                              for token, a, b in hypothesis.tokens]


def _widened(file: _File, frame_seconds: float) -> list[tuple[int, torch.Tensor]]:
    """The file's kept segments (first frame, emissions), each widened over the dropped pauses
    beside it (up to `PAUSE_REACH_SECONDS` either side): a word the search did not hear in a
    pause is aligned where it was said, not squeezed into the segment it was given to."""
    stretches = file.segmenter.dropped_stretches()
    ending = {first + len(emissions): emissions for first, emissions in stretches}
    starting = dict(stretches)
    reach = round(PAUSE_REACH_SECONDS / frame_seconds)
    widened = []
    for first, emissions in file.kept:
        lead = ending.get(first, emissions[:0])[-reach:]
        tail = starting.get(first + len(emissions), emissions[:0])[:reach]
        widened.append((first - len(lead), torch.cat([lead, emissions, tail])))
    return widened


def _segment_view(transcript: Transcript, offset: float) -> Transcript:
    """The transcript's last segment alone, its times from `offset` seconds on (for a plot)."""
    segment = transcript.segments[-1]
    words = slice(segment.first, segment.first + segment.count)
    view = Transcript(f"{transcript.id} from {offset:.1f} s" if offset else transcript.id, transcript.audio)
    view.words = transcript.words[words]
    view.starts = [t - offset for t in transcript.starts[words]]
    view.ends = [t - offset for t in transcript.ends[words]]
    return view


def _finished(files: deque[_File]) -> Iterator[_File]:
    """The leading files that are done, removed from `files` (so results stay in input order)."""
    while files and files[0].done:
        yield files.popleft()


def _word_records(transcript: Transcript, first: int = 0, count: int | None = None) -> list[dict]:
    stop = len(transcript.words) if count is None else first + count
    return [{"word": transcript.words[i], "start": transcript.starts[i], "end": transcript.ends[i]}
            for i in range(first, stop)]


def _segment_records(transcript: Transcript) -> list[dict]:
    """Whisper's `segments`: start, end, text and words of each phrase (a segment searched as
    one, split at its pauses); a segment's n best go with it when it is one phrase."""
    records = []
    for segment in transcript.segments:
        phrases = segment.phrases()
        for first, count in phrases:
            words = _word_records(transcript, first, count)
            if not words:
                continue
            record = {"start": words[0]["start"], "end": words[-1]["end"], "text": " ".join(w["word"] for w in words),
                      "words": words}
            if segment.alternatives and len(phrases) == 1:
                record["nbest"] = [{"text": text, "score": score} for text, score in segment.alternatives]
            records.append(record)
    return records


def format_transcript(transcript: Transcript, fmt: str, subtitles: SubtitleOptions | None = None) -> str:
    """One transcript as `fmt`: txt (Kaldi `text` line), json (one object per line, with
    whisper-style `segments`), ctm (`id 1 start duration word` per word), srt or vtt (cues of
    phrases within the `subtitles` limits)."""
    if fmt == "txt":
        return f"{transcript.id} {transcript.text}".rstrip() + "\n"
    if fmt == "json":
        record = {"id": transcript.id, "audio": transcript.audio, "text": transcript.text,
                  "duration": round(transcript.duration, 3), "words": _word_records(transcript),
                  "segments": _segment_records(transcript)}
        if transcript.tokens:
            record["tokens"] = [dataclasses.asdict(span) for span in transcript.tokens]
        if transcript.alternatives:
            record["nbest"] = [{"text": text, "score": score} for text, score in transcript.alternatives]
        return json.dumps(record) + "\n"
    if fmt == "ctm":
        return "".join(f"{transcript.id} 1 {s:.3f} {e - s:.3f} {w}\n"
                       for w, s, e in zip(transcript.words, transcript.starts, transcript.ends))
    if fmt in ("srt", "vtt"):
        cues = make_cues(transcript.words, transcript.starts, transcript.ends,
                         [first for segment in transcript.segments for first, _ in segment.phrases()], subtitles,
                         transcript.duration)
        return to_srt(cues) if fmt == "srt" else to_vtt(cues)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
