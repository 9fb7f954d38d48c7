"""Segment reductions over weight tensors in the log and tropical semirings.

`values[i]` belongs to segment `segments[i]`; empty segments reduce to -inf
(the semiring zero). These are autograd-friendly torch ops, usable on any device.
"""

from __future__ import annotations

import torch

LOG = "log"
TROPICAL = "tropical"
SEMIRINGS = (LOG, TROPICAL)


def check_semiring(semiring: str) -> str:
    if semiring not in SEMIRINGS:
        raise ValueError(f"semiring must be one of {SEMIRINGS}, got {semiring!r}")
    return semiring


def segment_max(values: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """max of `values` per segment (-inf for an empty one)."""
    out = torch.full((num_segments,), float("-inf"), dtype=values.dtype, device=values.device)
    return out.scatter_reduce(0, segments, values, reduce="amax", include_self=True)


def segment_argmax(values: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Index into `values` of the first maximum of each segment (ties go to the lowest index, so
    the result is deterministic); -1 for an empty segment."""
    best = segment_max(values, segments, num_segments)
    index = torch.arange(values.numel(), device=values.device)
    candidate = torch.where(values == best[segments], index, values.numel())
    first = torch.full((num_segments,), values.numel(), dtype=torch.long, device=values.device)
    first = first.scatter_reduce(0, segments, candidate, reduce="amin", include_self=True)
    return first.masked_fill(first == values.numel(), -1)


def segment_logsumexp(values: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """log(sum(exp(values))) per segment (-inf for an empty one), stable, differentiable with
    respect to `values`."""
    peak = segment_max(values.detach(), segments, num_segments)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    shifted = torch.exp(values - peak[segments])
    total = torch.zeros(num_segments, dtype=values.dtype, device=values.device).index_add(0, segments, shifted)
    return torch.log(total) + peak


def segment_reduce(values: torch.Tensor, segments: torch.Tensor, num_segments: int, semiring: str) -> torch.Tensor:
    if semiring == LOG:
        return segment_logsumexp(values, segments, num_segments)
    return segment_max(values, segments, num_segments)


def plus(a: torch.Tensor, b: torch.Tensor, semiring: str) -> torch.Tensor:
    """Semiring addition of two tensors (logaddexp or max)."""
    return torch.logaddexp(a, b) if semiring == LOG else torch.maximum(a, b)
