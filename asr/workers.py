"""The files of a job decoded in parallel, the transcripts coming back in input order (so outputs
are written as a single process writes them, and a stopped job resumes the same way): by N
worker processes on this machine (`asr transcribe --jobs N`), each with its own recognizer and
its share of the CPU threads, or by torchrun's ranks on one machine or many, rank 0 writing.
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
    tasks = _runs(inputs, files_per_task or 4 * batch_size)
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


def transcribe_across_ranks(decode: Callable[[list[tuple[str, str]]], Iterable], inputs: Sequence[tuple[str, str]],
                            files_per_run: int) -> Iterator:
    """Under torchrun: rank 0's `inputs` (utterance id, path) cut into runs of `files_per_run`
    consecutive files, dealt to the ranks in turn (rank r decodes runs r, r + N, ...) and
    decoded there by `decode(run)`; rank 0 yields every transcript in input order, the other
    ranks nothing. Every rank must call it (their own `inputs` are ignored)."""
    from .train.distributed import broadcast_object, current_context, gather_objects

    context = current_context()
    runs = _runs(broadcast_object(list(inputs)), files_per_run)
    for first in range(0, len(runs), context.world_size):
        mine = first + context.rank
        decoded = gather_objects(list(decode(runs[mine])) if mine < len(runs) else [])
        if context.is_main:
            for transcripts in decoded:
                yield from transcripts


def _runs(inputs: Iterable[tuple[str, str]], size: int) -> list[list[tuple[str, str]]]:
    """`inputs` cut into runs of `size` consecutive files (the last may be shorter)."""
    inputs = list(inputs)
    return [inputs[start:start + size] for start in range(0, len(inputs), size)]
