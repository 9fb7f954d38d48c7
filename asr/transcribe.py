"""Transcribe audio files with a trained model directory: inputs, batched decoding through the
directory's HLG graph, and transcripts with word times in the formats people use.

A file that cannot be read is reported and skipped (`Transcript.error`), the rest are decoded;
audio too short for one encoder frame (empty files included) gets an empty transcript.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

import graphs

from .audio import AudioError, EmptyAudioError, load_audio
from .data import read_manifest
from .decode import WfstDecoder, force_align, greedy_ctc, prefix_beam_search, viterbi_words, word_spans
from .lang import DecodingGraph
from .lm import NgramLM
from .model_dir import ModelDir
from .rescore import nbest_hypotheses, rescore

AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".mp3", ".ogg", ".opus", ".m4a")
FORMATS = ("txt", "json", "ctm", "srt", "vtt")


@dataclasses.dataclass
class Transcript:
    """One file's result: words with start/end seconds, or `error` when it could not be read."""

    id: str
    audio: str
    words: list[str] = dataclasses.field(default_factory=list)
    starts: list[float] = dataclasses.field(default_factory=list)
    ends: list[float] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    error: str | None = None
    alternatives: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # n-best (text, score)

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


@dataclasses.dataclass
class BeamOptions:
    """WFST beam search settings (see `asr.beam_search.WfstDecoder`). `nbest` > 1 or a
    `rescore_lm` make word lattices (within `lattice_beam`); the `nbest` best word sequences
    (after rescoring the lattice's 100 best with `rescore_lm`, when given) become
    `Transcript.alternatives`."""

    beam: float = 16.0
    max_active: int = 2000
    lm_scale: float = 1.0
    word_score: float = 0.0
    lattice_beam: float = 8.0
    nbest: int = 1
    rescore_lm: NgramLM | None = None

    @property
    def wants_lattices(self) -> bool:
        return self.nbest > 1 or self.rescore_lm is not None


class Recognizer:
    """Batched decoding with a `ModelDir` on `device`: through the directory's own graph, or
    `graph` (e.g. a 5k-word HLG from `asr compile-graph`). Graphs without epsilon input arcs
    are searched exactly (Viterbi) unless `beam` options are given; others with beam search
    (by default with the directory's decoding.json settings), and word times then come from
    a forced alignment of the words found. `prefix_beam` decodes without any graph (CTC prefix
    beam search of that width, text from the tokenizer); `greedy` without any search (the best
    token of every frame, repeats and blanks dropped): words for character and word-piece
    models, phones for phone models."""

    def __init__(self, saved: ModelDir, device: str = "cpu", graph: DecodingGraph | None = None,
                 beam: BeamOptions | None = None, prefix_beam: int | None = None, greedy: bool = False):
        self.saved, self.device = saved, torch.device(device)
        self.model = saved.model.to(self.device)
        self.min_samples = self._min_samples()
        self.graph = graph or saved.decoding_graph()
        self.prefix_beam, self.greedy = prefix_beam, greedy
        if greedy and (prefix_beam is not None or beam is not None):
            raise ValueError("greedy decoding uses no search: give no beam or prefix-beam options with it")
        if prefix_beam is not None and getattr(saved.tokenizer, "kind", None) == "phone":
            raise ValueError("lexicon-free decoding needs a character or word-piece model; this one outputs phones")
        if beam is None and bool((self.graph.graph.ilabel == graphs.EPSILON).any()):
            beam = BeamOptions(**saved.decoding)
        if beam is not None and beam.rescore_lm is not None and self.graph.lm is None:
            raise ValueError("rescoring needs the LM the graph was compiled with (lm.arpa in its directory)")
        self.beam = beam
        self.decoder = None if beam is None else WfstDecoder(
            self.graph.graph, beam.beam, beam.max_active, beam.lm_scale, beam.word_score,
            lattice_beam=beam.lattice_beam if beam.wants_lattices else None)

    def _min_samples(self) -> int:
        fbank = self.saved.featurizer.fbank
        frames = self.model.subsampling.min_length
        return fbank.window_size + (frames - 1) * fbank.window_shift

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

    @torch.no_grad()
    def transcribe(self, inputs: Iterable[tuple[str, str]], batch_size: int = 8) -> Iterator[Transcript]:
        """Transcripts in input order, decoded `batch_size` files at a time."""
        pending: list[tuple[Transcript, torch.Tensor | None]] = []
        for utterance_id, path in inputs:
            pending.append(self._load(utterance_id, path))
            if len(pending) == batch_size:
                yield from self._decode(pending)
                pending = []
        if pending:
            yield from self._decode(pending)

    def _decode(self, batch: list[tuple[Transcript, torch.Tensor | None]]) -> list[Transcript]:
        decodable = [(t, w) for t, w in batch if w is not None]
        if decodable:
            features = [self.saved.featurizer(w) for _, w in decodable]
            lengths = torch.tensor([len(f) for f in features])
            padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True).to(self.device)
            log_probs, out_lengths = self.model(padded, lengths.to(self.device))
            self._fill([t for t, _ in decodable], log_probs.cpu().double(), out_lengths.cpu())
        return [t for t, _ in batch]

    def _fill(self, transcripts: list[Transcript], log_probs: torch.Tensor, lengths: torch.Tensor) -> None:
        """Set each transcript's words and times from its emissions: times come from the exact
        search's own path, or else from a forced alignment of the words found."""
        if self.greedy or self.prefix_beam is not None:
            tokenizer = self.saved.tokenizer
            found = (greedy_ctc(log_probs, lengths) if self.greedy
                     else prefix_beam_search(log_probs, lengths, self.prefix_beam).tokens)
            words = [tokenizer.decode(tokens).split() for tokens in found]
            spell = tokenizer.spellings
            if tokenizer.kind == "phone":  # the "words" are phones
                spell = {phone: [[i]] for i, phone in enumerate(tokenizer.tokens)}.__getitem__
        elif self.decoder is None:
            indexes, alignment = viterbi_words(log_probs, lengths, self.graph.graph)
            spans = word_spans(alignment, [self.graph.graph.olabel], lengths)
            words, spell = [[self.graph.words[w] for w in ws] for ws in indexes], None
        else:
            result = self.decoder(log_probs, lengths)
            indexes = result.words
            if result.lattices is not None:
                indexes = [self._choose(transcript, lattice) for transcript, lattice in zip(transcripts, result.lattices)]
            words, spell = [[self.graph.words[w] for w in ws] for ws in indexes], self.graph.spellings.__getitem__
        if spell is not None:
            spans = force_align(log_probs, lengths, [[spell(w) for w in ws] for ws in words])[0]
        for transcript, transcript_words, frames in zip(transcripts, words, spans):
            self._set_words(transcript, transcript_words, frames)

    def _choose(self, transcript: Transcript, lattice: graphs.Graph) -> list[int]:
        """The best word sequence of a lattice after optional rescoring; keeps the n best."""
        hypotheses = nbest_hypotheses(lattice, max(self.beam.nbest, 100 if self.beam.rescore_lm else 1))
        if self.beam.rescore_lm is not None:
            hypotheses = rescore(hypotheses, self.graph.words, self.graph.lm, self.beam.rescore_lm, self.beam.lm_scale)
        transcript.alternatives = [(" ".join(self.graph.words[w] for w in h.words), round(h.score, 3))
                                   for h in hypotheses[:self.beam.nbest]]
        return hypotheses[0].words if hypotheses else []

    def _set_words(self, transcript: Transcript, words: list[str], frames: list[tuple[int, int]]) -> None:
        step = self.saved.frame_seconds
        transcript.words = words
        transcript.starts = [round(first * step, 3) for first, _ in frames]
        transcript.ends = [round(min((last + 1) * step, transcript.duration), 3) for _, last in frames]


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
