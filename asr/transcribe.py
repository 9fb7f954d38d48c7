"""Transcribe and align audio files with a trained model directory: inputs, features and
encoder in batches, any `asr.decoding` search, and transcripts with word times in the formats
people use.

A file that cannot be read is reported and skipped (`Transcript.error`), the rest are decoded;
audio too short for one encoder frame (empty files included) gets an empty transcript.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import torch

from .audio import AudioError, EmptyAudioError, load_audio
from .data import read_manifest
from .decoding import Decoder, ForcedAligner, Hypothesis
from .lm import UNK
from .model_dir import ModelDir
from .plots import plot_alignment

log = logging.getLogger("asr.transcribe")

_Batch = tuple[list["Transcript"], list["Transcript"], torch.Tensor, torch.Tensor]
AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".mp3", ".ogg", ".opus", ".m4a")
FORMATS = ("txt", "json", "ctm", "srt", "vtt")


@dataclasses.dataclass
class TokenSpan:
    """A token of the path taken and its start and end seconds."""

    token: str
    start: float
    end: float


@dataclasses.dataclass
class Transcript:
    """One file's result: words with start/end seconds (and the path's tokens with theirs), or
    `error` when it could not be read or aligned."""

    id: str
    audio: str
    words: list[str] = dataclasses.field(default_factory=list)
    starts: list[float] = dataclasses.field(default_factory=list)
    ends: list[float] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    error: str | None = None
    alternatives: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # n-best (text, score)
    tokens: list[TokenSpan] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.words)


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


class Recognizer:
    """Batched decoding of audio files with a `ModelDir` on `device`: `transcribe` searches
    with `decoder` (default: the directory's own search, `ModelDir.decoder()`); `align`
    force-aligns known transcripts through the directory's lexicon."""

    def __init__(self, saved: ModelDir, decoder: Decoder | None = None, device: str = "cpu"):
        self.saved, self.device = saved, torch.device(device)
        self.model = saved.model.to(self.device)
        self.decoder = decoder or saved.decoder()
        fbank = saved.featurizer.fbank
        self.min_samples = fbank.window_size + (self.model.subsampling.min_length - 1) * fbank.window_shift

    def transcribe(self, inputs: Iterable[tuple[str, str]], batch_size: int = 8) -> Iterator[Transcript]:
        """Transcripts in input order, decoded `batch_size` files at a time."""
        for every, transcripts, log_probs, lengths in self._batches(inputs, batch_size):
            if transcripts:
                self._set_all(transcripts, self.decoder(log_probs, lengths))
            yield from every

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
        does a transcript that cannot fit the audio); `plot_dir` receives ID.png per file."""
        for every, transcripts, log_probs, lengths in self._batches(inputs, batch_size):
            words = [self._words_to_align(t, texts) for t in transcripts]
            keep = [i for i, w in enumerate(words) if w is not None]
            if keep:
                rows, chosen = torch.tensor(keep), [transcripts[i] for i in keep]
                hypotheses = ForcedAligner([words[i] for i in keep], self.saved.graph.spell)(
                    log_probs[rows], lengths[rows])
                self._set_all(chosen, hypotheses)
                for transcript, hypothesis, row in zip(chosen, hypotheses, keep):
                    if not hypothesis.found:
                        transcript.error = f"the transcript ({len(words[row])} words) does not fit the audio"
                    elif plot_dir:
                        plot_alignment(Path(plot_dir) / f"{transcript.id}.png", log_probs[row, :int(lengths[row])],
                                       hypothesis, self.saved.tokens, transcript, self.saved.frame_seconds)
            yield from every

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

    def _load(self, utterance_id: str, path: str) -> tuple[Transcript, torch.Tensor | None]:
        """The transcript shell and the waveform (None when there is nothing to decode)."""
        transcript = Transcript(utterance_id, path)
        try:
            waveform = load_audio(path, self.saved.sample_rate)
        except EmptyAudioError:
            return transcript, None
        except (AudioError, OSError) as error:
            transcript.error = str(error)
            return transcript, None
        transcript.duration = waveform.numel() / self.saved.sample_rate
        return transcript, waveform if waveform.numel() >= self.min_samples else None

    def _batches(self, inputs: Iterable[tuple[str, str]], batch_size: int) -> Iterator[_Batch]:
        """Batches of `batch_size` inputs: every input's transcript in order, the decodable
        ones' transcripts, and their emissions [B, T, V] (float64, on the CPU) and lengths."""
        pending: list[tuple[Transcript, torch.Tensor | None]] = []
        for utterance_id, path in inputs:
            pending.append(self._load(utterance_id, path))
            if len(pending) == batch_size:
                yield self._emissions(pending)
                pending = []
        if pending:
            yield self._emissions(pending)

    @torch.no_grad()
    def _emissions(self, batch: list[tuple[Transcript, torch.Tensor | None]]) -> _Batch:
        every = [t for t, _ in batch]
        decodable = [t for t, w in batch if w is not None]
        waveforms = [w for _, w in batch if w is not None]
        if not waveforms:
            return every, decodable, torch.empty(0), torch.empty(0, dtype=torch.long)
        features = [self.saved.featurizer(w) for w in waveforms]
        lengths = torch.tensor([len(f) for f in features])
        padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True).to(self.device)
        log_probs, out_lengths = self.model(padded, lengths.to(self.device))
        return every, decodable, log_probs.cpu().double(), out_lengths.cpu()

    def _set_all(self, transcripts: Sequence[Transcript], hypotheses: Sequence[Hypothesis]) -> None:
        """Words, times in seconds, token times and alternatives of each transcript."""
        step, tokens = self.saved.frame_seconds, self.saved.tokens
        for transcript, hypothesis in zip(transcripts, hypotheses):
            end = transcript.duration
            transcript.words = hypothesis.words
            transcript.starts = [round(first * step, 3) for first, _ in hypothesis.spans]
            transcript.ends = [round(min((last + 1) * step, end), 3) for _, last in hypothesis.spans]
            transcript.tokens = [TokenSpan(tokens[token], round(first * step, 3), round(min((last + 1) * step, end), 3))
                                 for token, first, last in hypothesis.tokens]
            transcript.alternatives = [(" ".join(words), score) for words, score in hypothesis.alternatives]


def _timestamp(seconds: float, separator: str) -> str:
    milliseconds = int(round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def format_transcript(transcript: Transcript, fmt: str) -> str:
    """One transcript as `fmt`: txt (Kaldi `text` line), json (one object per line), ctm
    (`id 1 start duration word` per word), srt or vtt (one cue per word)."""
    if fmt == "txt":
        return f"{transcript.id} {transcript.text}".rstrip() + "\n"
    if fmt == "json":
        words = [{"word": w, "start": s, "end": e} for w, s, e in zip(transcript.words, transcript.starts, transcript.ends)]
        record = {"id": transcript.id, "audio": transcript.audio, "text": transcript.text,
                  "duration": round(transcript.duration, 3), "words": words}
        if transcript.tokens:
            record["tokens"] = [dataclasses.asdict(span) for span in transcript.tokens]
        if transcript.alternatives:
            record["nbest"] = [{"text": text, "score": score} for text, score in transcript.alternatives]
        return json.dumps(record) + "\n"
    if fmt == "ctm":
        return "".join(f"{transcript.id} 1 {s:.3f} {e - s:.3f} {w}\n"
                       for w, s, e in zip(transcript.words, transcript.starts, transcript.ends))
    if fmt in ("srt", "vtt"):
        separator = "," if fmt == "srt" else "."
        cues = [f"{i}\n{_timestamp(s, separator)} --> {_timestamp(e, separator)}\n{w}\n"
                for i, (w, s, e) in enumerate(zip(transcript.words, transcript.starts, transcript.ends), start=1)]
        return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
