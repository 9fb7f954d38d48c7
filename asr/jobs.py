"""Output directories of batch jobs that survive being killed: each file's results are
appended as soon as it is done, and a rerun into the same directory skips the files done.

`done.jsonl` lists the files finished, each with the size of every output file after its
results were written (and flushed to disk). On a rerun the outputs are cut back to the last
complete entry, which drops the partial results of a file that was being written when the job
died, and the files listed are not decoded again: the final outputs equal those of a run that
was never interrupted (the temporary file of a per-input output being written is removed too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from graphs.io import atomic_open, remove_stale_temporaries

LEDGER = "done.jsonl"
STREAMED = ("txt", "json", "ctm")  # formats with one file for all inputs; others get a file per input


class OutputDir:
    """`folder`/transcripts.{txt,json,ctm} and ID.{srt,vtt} for `formats`, resumed from
    `done.jsonl` when it is there; `format_fn(transcript, fmt)` renders a result."""

    def __init__(self, folder: str | Path, formats: Sequence[str], format_fn: Callable[[object, str], str]):
        self.folder, self.formats, self.format_fn = Path(folder), list(formats), format_fn
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)  # a killed job's half-written ID.srt
        self.paths = {fmt: self.folder / f"transcripts.{fmt}" for fmt in self.formats if fmt in STREAMED}
        self.done: set[str] = set()
        sizes = self._resume()
        self.streams = {}
        for fmt, path in self.paths.items():
            self.streams[fmt] = open(path, "r+b" if path.exists() else "wb")
            self.streams[fmt].truncate(sizes.get(path.name, 0))
            self.streams[fmt].seek(0, os.SEEK_END)
        self.ledger = open(self.folder / LEDGER, "a")

    def _resume(self) -> dict[str, int]:
        """The done files and the output sizes after the last of them (nothing: a fresh start)."""
        path = self.folder / LEDGER
        if not path.exists():
            return {}
        entries = []
        with open(path) as f:
            for line in f:
                try:
                    entries.append(json.loads(line))
                except ValueError:  # the line being written when the job died
                    break
        sizes = entries[-1]["sizes"] if entries else {}
        wanted = sorted(p.name for p in self.paths.values())
        if entries and sorted(sizes) != wanted:
            raise ValueError(f"{self.folder}: its results were written with other formats ({', '.join(sorted(sizes))} "
                             f"in {LEDGER}); give the same -f to resume, or another -o")
        with atomic_open(path, "w") as rewritten:  # drop a torn last line
            rewritten.writelines(json.dumps(entry) + "\n" for entry in entries)
        self.done = {entry["id"] for entry in entries}
        return sizes

    def write(self, transcript) -> None:
        """All of one file's outputs, then its ledger entry."""
        for fmt in self.formats:
            text = self.format_fn(transcript, fmt)
            if fmt in self.streams:
                self.streams[fmt].write(text.encode())
            else:
                with atomic_open(self.folder / f"{transcript.id}.{fmt}", "w") as single:
                    single.write(text)
        sizes = {}
        for fmt, stream in self.streams.items():
            stream.flush()
            os.fsync(stream.fileno())
            sizes[self.paths[fmt].name] = stream.tell()
        self.ledger.write(json.dumps({"id": transcript.id, "sizes": sizes}) + "\n")
        self.ledger.flush()
        os.fsync(self.ledger.fileno())
        self.done.add(transcript.id)

    def close(self) -> None:
        for stream in (*self.streams.values(), self.ledger):
            stream.close()

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
