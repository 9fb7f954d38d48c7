"""`asr transcribe --jobs N`: the files of a job decoded by N worker processes, each with its own
recognizer and its share of the CPU threads, the transcripts coming back in input order (so
outputs are written as a single process writes them, and a stopped job resumes the same way).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence

import torch

_recognizer = None  # this worker's, made once by `_start`
_batch_size = 8


def transcribe_in_workers(make_recognizer: Callable[[], object], inputs: Sequence[tuple[str, str]], jobs: int,
                          batch_size: int = 8, files_per_task: int | None = None) -> Iterator:
    """Transcripts of `inputs` (utterance id, path) in input order, decoded by `jobs` processes:
    each calls `make_recognizer()` (a picklable callable, e.g. a partial of a module-level
    function) once and decodes runs of `files_per_task` consecutive files (default: 4 batches)."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    inputs = list(inputs)
    size = files_per_task or 4 * batch_size
    tasks = [inputs[start:start + size] for start in range(0, len(inputs), size)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn: a fresh interpreter per worker, so no OpenMP or tokenizer thread state is forked.
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                             initargs=(make_recognizer, threads, batch_size)) as pool:
        for transcripts in pool.map(_decode, tasks):
            yield from transcripts


def _start(make_recognizer: Callable[[], object], threads: int, batch_size: int) -> None:
    global _recognizer, _batch_size
    torch.set_num_threads(threads)
    _recognizer, _batch_size = make_recognizer(), batch_size


def _decode(inputs: Iterable[tuple[str, str]]) -> list:
    return list(_recognizer.transcribe(inputs, batch_size=_batch_size))
