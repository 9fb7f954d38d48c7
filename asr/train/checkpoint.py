"""Checkpoint files: atomic saves, loads with errors that name the file, RNG states, averaging.

Checkpoints hold only tensors and plain Python values (RNG states included), so they load
with `torch.load(weights_only=True)`: opening one never runs pickled code.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from graphs.io import atomic_open


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Writes `state` to `path` atomically, so a crash or kill leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save(state, f)

def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Loads a checkpoint written by `save_checkpoint` (tensors and plain values only).

    mmap=True maps tensors lazily from the file: cheap when only a few fields are read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, mmap=mmap, weights_only=True)
    except Exception as e:
        raise RuntimeError(f"cannot load checkpoint {path}: {type(e).__name__}: {e}") from e

def rng_state() -> dict:
    """States of Python's `random`, numpy's global RNG, torch's CPU RNG and every CUDA device's RNG."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }

def set_rng_state(state: dict) -> None:
    """Restores an `rng_state()` result (CUDA states for as many devices as both runs have)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)

def seed_everything(seed: int) -> None:
    """Seeds Python's `random`, numpy's global RNG and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict[str, torch.Tensor]:
    """Model state dict averaged over checkpoints (e.g. the last few epochs), for decoding.

    Floating-point tensors are averaged (accumulated in float64, then cast back); integer
    tensors (counters such as BatchNorm's num_batches_tracked) are taken from the last file.
    Accepts trainer checkpoints (their "model" entry) or bare state dicts.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    first = _model_state(paths[0])
    total = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    for path in paths[1:]:
        state = _model_state(path)
        if set(state) != set(first):
            raise ValueError(f"checkpoint {path} has other parameter names than {paths[0]}: "
                             f"{sorted(set(first) ^ set(state))[:5]}")
        for name, value in state.items():
            total[name] = total[name] + value.double() if value.is_floating_point() else value
    return {k: (v / len(paths)).to(first[k].dtype) if v.is_floating_point() else v for k, v in total.items()}

def _model_state(path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return state.get("model", state)
