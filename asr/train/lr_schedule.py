"""Learning-rate schedules as `torch.optim.lr_scheduler.LambdaLR` factories, stepped once per
optimizer step. Step s of the scheduler (0 before the first optimizer step) uses n = s + 1, so
the first update already has a non-zero rate."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def noam_factor(step: int, warmup_steps: int, d_model: int) -> float:
    """The Transformer ("Noam") rate d_model^-0.5 * min(n^-0.5, n * warmup^-1.5), n = step + 1:
    linear warmup to its peak d_model^-0.5 * warmup^-0.5 at n = warmup, then n^-0.5 decay."""
    n = step + 1
    return d_model**-0.5 * min(n**-0.5, n * warmup_steps**-1.5)


def noam_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, d_model: int | None = None,
                  peak_lr: float | None = None) -> LambdaLR:
    """Warmup + inverse-square-root decay.

    With `d_model`: the original rule, lr = base_lr * noam_factor (base_lr is the usual "factor",
    e.g. 1 to 10). With `peak_lr` instead: the same shape scaled so the rate reaches exactly
    `peak_lr` at step `warmup_steps`, whatever the optimizer's lr and the model width.
    """
    if (d_model is None) == (peak_lr is None):
        raise ValueError("give exactly one of d_model (classic Noam) and peak_lr (Noam shape scaled to a peak)")
    _check_warmup(warmup_steps)
    if d_model is not None:
        return LambdaLR(optimizer, lambda step: noam_factor(step, warmup_steps, d_model))
    peak = noam_factor(warmup_steps - 1, warmup_steps, 1)
    lambdas = [lambda step, base=group["lr"]: peak_lr / base * noam_factor(step, warmup_steps, 1) / peak
               for group in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                    min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warmup to the optimizer's lr over `warmup_steps`, then half a cosine down to
    `min_lr_ratio * lr` at `total_steps` (and held there if training runs longer)."""
    _check_warmup(warmup_steps)
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")

    def factor(step: int) -> float:
        n = step + 1
        if n <= warmup_steps:
            return n / warmup_steps
        progress = min(1.0, (n - warmup_steps) / (total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def _check_warmup(warmup_steps: int) -> None:
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
