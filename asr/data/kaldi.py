"""Kaldi data directories <-> `Utterance` lists.

Supported on import: `wav.scp` lines `utt-id path` (a plain file path),
`text` (`utt-id words...`), optional `utt2spk` (default speaker: the utterance
id, as Kaldi recommends when speakers are unknown) and optional `utt2dur`
(seconds; without it every audio file is opened to measure it). Every file
present must list exactly the ids of `wav.scp`. Not supported, with an
error that says so: piped `wav.scp` commands (`... |`) and `segments` files
(utterances cut from longer recordings), since the dataset loads whole files.

Relative `wav.scp` paths are resolved against `root`, by default the current
folder, which is what Kaldi tools do (recipes run from the folder above `data/`).

Export writes `wav.scp`, `text`, `utt2spk`, `spk2utt` and `utt2dur`, sorted by
id as Kaldi's `validate_data_dir.sh` requires, each file replaced atomically.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import soundfile

from graphs.io import atomic_open

from .manifest import Utterance, utterance_from_record

_SOX_SPEED = re.compile(r"sox -t wav (?P<path>.+) -t wav - speed (?P<speed>[0-9.eE+-]+) \|")


def import_kaldi_dir(path: str | os.PathLike, duration: Callable[[str], float] | None = None,
                     root: str | os.PathLike | None = None) -> list[Utterance]:
    """Reads a Kaldi data dir into utterances, in `wav.scp` order.

    duration: audio path -> seconds, used when there is no `utt2dur`;
    default `soundfile.info(path).duration`.
    root: folder that relative audio paths are relative to (default: current folder).

    Raises ValueError naming the file and line for malformed or duplicate lines,
    ids present in one file but not another, piped commands and unreadable audio;
    FileNotFoundError when `wav.scp` or `text` is absent.
    """
    folder = Path(path)
    segments = folder / "segments"
    if segments.exists():
        raise ValueError(f"{segments}: segments files (utterances cut from longer recordings) are not "
                         "supported; cut the recordings into one file per utterance first")
    wav_scp = folder / "wav.scp"
    audio = _read_table(wav_scp, value_required=True)
    speeds = {key: _speed_of(value) for key, (_, value) in audio.items()}
    for key, (number, value) in audio.items():
        if value.endswith("|") and speeds[key] is None:
            raise ValueError(f"{wav_scp}, line {number}: piped commands ({value!r}) are not supported "
                             "(except the sox speed pipes that export_kaldi_dir writes); convert the audio to "
                             "files and list their paths")
    text = _read_table(folder / "text", value_required=False)
    _check_keys(folder / "text", text, audio, wav_scp)
    speakers = _read_optional(folder / "utt2spk", audio, wav_scp)
    durations = _read_optional(folder / "utt2dur", audio, wav_scp)
    measure = duration or (lambda file: soundfile.info(file).duration)
    base = (Path(root) if root is not None else Path.cwd()).absolute()

    utterances = []
    for key, (number, value) in audio.items():
        path, speed = speeds[key] or (value, 1.0)
        file = os.path.join(base, path)
        try:
            seconds = float(durations[key][1]) if durations else measure(file) / speed
        except (OSError, RuntimeError, ValueError) as e:
            source = f"{folder / 'utt2dur'}, line {durations[key][0]}" if durations else f"{wav_scp}, line {number}"
            raise ValueError(f"{source}: cannot get the duration of {file}: {e}") from None
        record = {"id": key, "audio": file, "duration": seconds, "text": text[key][1],
                  "speaker": speakers[key][1] if speakers else key, "speed": speed}
        try:
            utterances.append(utterance_from_record(record))
        except ValueError as e:
            raise ValueError(f"{wav_scp}, line {number}: {e}") from None
    return utterances


def export_kaldi_dir(utterances: Iterable[Utterance], path: str | os.PathLike) -> None:
    """Writes `wav.scp`, `text`, `utt2spk`, `spk2utt`, `utt2dur` into `path` (created if needed);
    speed-perturbed utterances become sox pipes in wav.scp, as in Kaldi.

    Raises ValueError, before writing anything, for an invalid utterance, a duplicate
    id, or a transcript or audio path containing a line break.
    """
    folder = Path(path)
    ordered = sorted(utterances, key=lambda u: u.id)
    for previous, utterance in zip([None, *ordered], ordered):
        try:
            utterance_from_record({**dataclasses.asdict(utterance), "audio": os.fspath(utterance.audio)})
        except ValueError as e:
            raise ValueError(f"utterance {utterance.id!r}: {e}") from None
        if previous is not None and previous.id == utterance.id:
            raise ValueError(f"utterance id {utterance.id!r} appears twice")
        if any(c in field for field in (utterance.text, os.fspath(utterance.audio)) for c in "\r\n"):
            raise ValueError(f"utterance {utterance.id!r}: line breaks cannot be written to a Kaldi file")
    by_speaker: dict[str, list[str]] = {}
    for utterance in ordered:
        by_speaker.setdefault(utterance.speaker, []).append(utterance.id)

    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "wav.scp": [f"{u.id} {_wav_scp_entry(u)}" for u in ordered],
        "text": [f"{u.id} {u.text}".rstrip() for u in ordered],
        "utt2spk": [f"{u.id} {u.speaker}" for u in ordered],
        "spk2utt": [f"{s} {' '.join(ids)}" for s, ids in sorted(by_speaker.items())],
        "utt2dur": [f"{u.id} {u.duration!r}" for u in ordered],
    }
    for name, lines in tables.items():
        with atomic_open(folder / name) as f:
            f.writelines(line + "\n" for line in lines)


def _wav_scp_entry(utterance: Utterance) -> str:
    """The audio path, or for a speed-perturbed copy the sox pipe Kaldi's perturb_data_dir_speed.sh writes."""
    path = os.fspath(utterance.audio)
    return path if utterance.speed == 1.0 else f"sox -t wav {path} -t wav - speed {utterance.speed!r} |"


def _speed_of(entry: str) -> tuple[str, float] | None:
    """(path, speed) of a wav.scp entry written by `_wav_scp_entry` for a speed-perturbed copy, else None."""
    match = _SOX_SPEED.fullmatch(entry)
    return (match["path"], float(match["speed"])) if match else None


def _read_table(path: Path, value_required: bool) -> dict[str, tuple[int, str]]:
    """`key value...` lines -> {key: (line number, rest of line stripped)}; blank lines skipped."""
    table: dict[str, tuple[int, str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            key, value = fields[0], fields[1].strip() if len(fields) > 1 else ""
            if value_required and not value:
                raise ValueError(f"{path}, line {number}: expected `{key} <value>`, found only the id")
            if key in table:
                raise ValueError(f"{path}, line {number}: utterance id {key!r} "
                                 f"already appears on line {table[key][0]}")
            table[key] = (number, value)
    return table


def _read_optional(path: Path, audio: dict, wav_scp: Path) -> dict[str, tuple[int, str]]:
    """An optional `utt-id value` file ({} when absent) covering exactly the `wav.scp` ids."""
    if not path.exists():
        return {}
    table = _read_table(path, value_required=True)
    for key, (number, value) in table.items():
        if len(value.split()) != 1:
            raise ValueError(f"{path}, line {number}: expected `{key} <value>`, got {value!r}")
    _check_keys(path, table, audio, wav_scp)
    return table


def _check_keys(path: Path, table: dict, audio: dict, wav_scp: Path) -> None:
    """Every id of `table` is in `wav.scp` and vice versa; errors point at the offending line."""
    for key, (number, _) in table.items():
        if key not in audio:
            raise ValueError(f"{path}, line {number}: utterance {key!r} is not in {wav_scp}")
    for key, (number, _) in audio.items():
        if key not in table:
            raise ValueError(f"{path}: no entry for utterance {key!r} ({wav_scp}, line {number})")
