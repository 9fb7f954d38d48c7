"""JSONL manifests: one utterance per line, `{"id", "audio", "duration", "text", "speaker"}`
(plus `"speed"` for the speed-perturbed copies that `speed_perturbed` makes).

A manifest is the single description of a corpus that the rest of the toolkit
reads (Kaldi data dirs are converted into it). Reading is strict, and every error
names the file and line, because a bad line found hours into training is
expensive. Writing is atomic (temporary file in the same folder, then
`os.replace`), so an interrupted preparation never leaves a truncated manifest
that looks complete.

Relative `audio` paths are resolved against the manifest's folder, so a corpus
folder holding its manifest can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from graphs.io import atomic_open

FIELDS = ("id", "audio", "duration", "text", "speaker")
OPTIONAL_FIELDS = ("speed",)


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording and its transcript.

    id: unique, no whitespace (it is the first field of Kaldi and scoring files).
    audio: path of the audio file (absolute once read from a manifest).
    duration: seconds, > 0 (used for batching without opening the audio).
    text: transcript, may be empty.
    speaker: speaker id, no whitespace.
    speed: play the audio this many times faster when reading it (speed perturbation; the
    duration is already the perturbed one).
    """

    id: str
    audio: str
    duration: float
    text: str
    speaker: str
    speed: float = 1.0


def utterance_from_record(record: object) -> Utterance:
    """Checks a decoded record (a dict) and builds the `Utterance`.

    Raises ValueError describing the problem without a location; callers add
    the file and line.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(record) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)} "
                         f"and optionally {', '.join(OPTIONAL_FIELDS)}")
    for name in ("id", "speaker"):
        value = record[name]
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
        if value.split() != [value]:
            raise ValueError(f"field {name!r} must be non-empty without whitespace, got {value!r}")
    if not isinstance(record["audio"], str) or not record["audio"]:
        raise ValueError(f"field 'audio' must be a non-empty string, got {record['audio']!r}")
    if not isinstance(record["text"], str):
        raise ValueError(f"field 'text' must be a string, got {type(record['text']).__name__}")
    duration, speed = _positive(record, "duration"), _positive(record, "speed") if "speed" in record else 1.0
    return Utterance(record["id"], record["audio"], duration, record["text"], record["speaker"], speed)


def _positive(record: dict, name: str) -> float:
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"field {name!r} must be positive and finite, got {value!r}")
    return float(value)


def speed_perturbed(utterances: Iterable[Utterance], factors: Iterable[float]) -> list[Utterance]:
    """The utterances followed by a copy of each at every speed factor (Kaldi's
    perturb_data_dir_speed.sh: ids and speakers prefixed "sp0.9-", durations divided by the factor)."""
    utterances, factors = list(utterances), list(factors)
    if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in factors):
        raise ValueError(f"speed factors must be positive numbers, got {factors}")
    copies = [dataclasses.replace(u, id=f"sp{factor:g}-{u.id}", speaker=f"sp{factor:g}-{u.speaker}",
                                  duration=u.duration / factor, speed=u.speed * factor)
              for factor in factors if factor != 1.0 for u in utterances]
    return utterances + copies


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Reads a JSONL manifest; blank lines are skipped.

    Raises ValueError naming the file and line for invalid JSON, a missing,
    unknown or mistyped field, or an id seen on an earlier line.
    """
    path = Path(path)
    folder = path.absolute().parent
    utterances: list[Utterance] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                utterance = utterance_from_record(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: invalid JSON: {e.msg} (column {e.colno})") from None
            except ValueError as e:
                raise ValueError(f"{path}, line {number}: {e}") from None
            if utterance.id in first_line:
                raise ValueError(f"{path}, line {number}: utterance id {utterance.id!r} "
                                 f"already appears on line {first_line[utterance.id]}")
            first_line[utterance.id] = number
            utterances.append(dataclasses.replace(utterance, audio=os.path.join(folder, utterance.audio)))
    return utterances


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Writes utterances as JSONL, atomically; creates the parent folder.

    Audio paths are written as given. Each utterance is checked as `read_manifest`
    would check it (and ids must be unique), so whatever is written reads back;
    on an error the destination is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with atomic_open(path) as f:
        for number, utterance in enumerate(utterances):
            record = dataclasses.asdict(utterance)
            record["audio"] = os.fspath(record["audio"])
            if record["speed"] == 1.0:
                del record["speed"]
            try:
                utterance_from_record(record)
            except ValueError as e:
                raise ValueError(f"{path}: utterance #{number} ({utterance.id!r}): {e}") from None
            if utterance.id in seen:
                raise ValueError(f"{path}: utterance #{number}: id {utterance.id!r} appears twice")
            seen.add(utterance.id)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
