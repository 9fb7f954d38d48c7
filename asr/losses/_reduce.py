"""Reduction of per-utterance losses, with torch's semantics."""

from __future__ import annotations

import torch

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def zero_infinite(losses: torch.Tensor) -> torch.Tensor:
    """`losses` with +inf (no path the graph allows) set to 0, as torch's `zero_infinity` does;
    their gradients are already zero (graphs.intersect_dense gives no path none)."""
    return torch.where(torch.isinf(losses), torch.zeros_like(losses), losses)


def reduce_losses(losses: torch.Tensor, reduction: str, normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """'none': as is; 'sum': summed; 'mean': each divided by `normalizer` (e.g. target
    lengths, clamped to >= 1) when given, then averaged over the batch."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if normalizer is not None:
        losses = losses / normalizer.to(losses.dtype).clamp(min=1)
    return losses.mean()
