"""Data-parallel training through `torchrun`: process-group set-up from its environment,
DDP wrapping, and the few collectives the trainer needs (all no-ops in a single process).

    torchrun --nproc_per_node=NUM_GPUS my_train.py ...

Each process trains one replica on its shard of every global batch (the batch sampler shards
by `rank`/`world_size`); DDP averages gradients, so N ranks with per-rank batch B step like
one process with batch N * B.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger("asr.train")


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job; rank 0 is the one that writes files and logs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """The GPU of this local rank when CUDA is available, else the CPU."""
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_distributed(backend: str | None = None) -> DistributedContext:
    """Joins the process group described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK
    (nccl on CUDA, gloo on CPU); a plain `python` run (no WORLD_SIZE, or 1) is a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext()
    context = DistributedContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(context.local_rank)
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
        logger.info("joined process group: rank %d of %d (local rank %d, backend %s)",
                    context.rank, world_size, context.local_rank, dist.get_backend())
    return context


def current_context() -> DistributedContext:
    """The context of an initialized process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _several_ranks() -> bool:
    """Whether this process is in an initialized process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap_model(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """DistributedDataParallel around `model` (already on its device) when there are several ranks."""
    if context.world_size == 1:
        return model
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place sum / mean / min / max over ranks (`tensor` on this rank's device)."""
    if not _several_ranks():
        return tensor
    reduce_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN,
                 "max": dist.ReduceOp.MAX}[op]
    dist.all_reduce(tensor, reduce_op)
    if op == "mean":
        tensor /= dist.get_world_size()
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj` (picklable), in rank order; [obj] in a single process."""
    if not _several_ranks():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def gather_objects(obj: Any) -> list[Any] | None:
    """Every rank's `obj` (picklable) in rank order, on rank 0 only (None on the others); [obj]
    in a single process."""
    if not _several_ranks():
        return [obj]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` (picklable) on every rank; `obj` itself in a single process."""
    if not _several_ranks():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Waits for every rank (nothing to wait for in a single process)."""
    if _several_ranks():
        dist.barrier()


def rank_device(device: str, context: DistributedContext) -> str:
    """`device` for this rank: plain "cuda" under torchrun is this local rank's GPU."""
    return f"cuda:{context.local_rank}" if device == "cuda" and context.world_size > 1 else device


def cleanup() -> None:
    """Leaves the process group (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave_together() -> None:
    """Every rank leaves the process group at once, after the last collective: a rank that
    tears its group down while another still holds it can abort at exit (gloo: "terminate
    called without an active exception", seen in CI)."""
    barrier()
    cleanup()
