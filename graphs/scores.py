"""Scores of graphs: forward (log semiring), Viterbi (tropical), best paths, arc posteriors.

Each takes a graph or a list of graphs (scored together in one pass). The scores
have a custom backward: forward-backward arc posteriors for `forward_score`, the
best path's arcs for `viterbi_score`; `viterbi_path` gathers its weights from the
input; `arc_posteriors` is detached. A graph with no accepting path scores -inf
and passes zero gradient.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._batch import Batch, assemble
from ._schedule import LOG, TROPICAL, Schedule, schedule_for
from .graph import Graph, as_list


class _GraphScore(torch.autograd.Function):
    """Total score of every graph in a batch; gradient = arc posteriors (log) or best-path indicator (tropical).

    Distances are accumulated in float64 whatever the weight dtype: over thousands of
    levels, float32 sums drift enough to bias posteriors by about 0.1%.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, schedule: Schedule, semiring: str):
        work = weight.to(torch.float64)
        alpha = schedule.forward(work, semiring)
        total = schedule.total(alpha, semiring)
        ctx.schedule, ctx.semiring = schedule, semiring
        ctx.save_for_backward(work, alpha, total)
        return total.to(weight.dtype)

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        weight, alpha, total = ctx.saved_tensors
        schedule = ctx.schedule
        if ctx.semiring == LOG:
            beta = schedule.backward(weight, LOG)
            occupancy = schedule.arc_posteriors(weight, alpha, beta, total)
        else:
            occupancy = torch.zeros_like(weight)
            paths, _ = schedule.best_path_arcs(weight, alpha)
            arcs = np.concatenate(paths) if paths else np.empty(0, dtype=np.int64)
            occupancy.index_put_((schedule.batch.tensor(arcs),), torch.ones(arcs.size, dtype=weight.dtype, device=weight.device), accumulate=True)
        grad = occupancy * grad_total.to(torch.float64).index_select(0, schedule.arc_graph_t)
        return grad.to(grad_total.dtype), None, None


def _score(graphs, semiring: str) -> torch.Tensor:
    items, single = as_list(graphs)
    batch = Batch(items)
    total = _GraphScore.apply(batch.weight, schedule_for(batch), semiring)
    return total[0] if single else total


def forward_score(graphs: Graph | Sequence[Graph]) -> torch.Tensor:
    """Log-sum-exp of the weights of all accepting paths (a 0-dim tensor, or [B] for a list).

    Graphs with cycles are summed to convergence; a divergent sum raises ValueError.
    """
    return _score(graphs, LOG)


def viterbi_score(graphs: Graph | Sequence[Graph]) -> torch.Tensor:
    """Weight of the best accepting path (a 0-dim tensor, or [B] for a list).

    A cycle with positive total weight makes the best path unbounded: ValueError.
    """
    return _score(graphs, TROPICAL)


def viterbi_path(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """The best accepting path of each graph as a linear Graph.

    Its weights are gathered from the input's, so gradients flow back to them;
    a graph with no accepting path gives an empty graph (scores -inf).
    """
    items, single = as_list(graphs)
    batch = Batch(items)
    schedule = schedule_for(batch)
    weight = batch.weight
    with torch.no_grad():
        alpha = schedule.forward(weight.detach(), TROPICAL)
    paths, has_path = schedule.best_path_arcs(weight, alpha)
    result = paths_to_graphs(batch, paths, has_path)
    return result[0] if single else result


def paths_to_graphs(batch: Batch, paths: list[np.ndarray], has_path: np.ndarray) -> list[Graph]:
    """Linear graphs made of the given batch arcs (one list of arc ids per path)."""
    lengths = np.array([p.size for p in paths], dtype=np.int64)
    node_counts = np.where(has_path, lengths + 1, 0)
    node_offset = np.concatenate([[0], np.cumsum(node_counts)])
    arcs = np.concatenate(paths) if paths else np.empty(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(paths)), lengths)
    step = np.arange(arcs.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    src = node_offset[owner] + step
    node_graph = np.repeat(np.arange(len(paths)), node_counts)
    weight = batch.weight.index_select(0, batch.tensor(arcs))
    return assemble(
        len(paths), node_graph, src, src + 1, batch.ilabel[arcs], batch.olabel[arcs], weight,
        node_offset[:-1][has_path], (node_offset[1:] - 1)[has_path], batch.device, batch.dtype,
    )


def arc_posteriors(graphs: Graph | Sequence[Graph]) -> torch.Tensor | list[torch.Tensor]:
    """Posterior probability of each arc (expected number of times it is used on an
    accepting path, paths weighted by exp(score)); zeros for a graph with no path.
    Not differentiable: the result is detached."""
    items, single = as_list(graphs)
    batch = Batch(items)
    schedule = schedule_for(batch)
    with torch.no_grad():
        weight = batch.weight.detach()
        alpha = schedule.forward(weight, LOG)
        beta = schedule.backward(weight, LOG)
        posteriors = schedule.arc_posteriors(weight, alpha, beta, schedule.total(alpha, LOG))
    parts = list(torch.split(posteriors, np.diff(batch.arc_offset).tolist()))
    return parts[0] if single else parts
