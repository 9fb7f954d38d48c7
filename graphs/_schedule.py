"""Shortest-distance sweeps over a batch of graphs in the log or tropical semiring.

Acyclic graphs are swept one topological level at a time (all arcs into a level
in one vectorized step). Graphs with cycles are relaxed over all arcs at once
until the distances stop changing; if they never settle the sum diverges and a
ValueError says so, rather than returning a silently wrong number.
"""

from __future__ import annotations

import numpy as np
import torch

from ._arrays import CSR, topological_levels
from ._batch import Batch
from ._semiring import LOG, TROPICAL, plus, segment_reduce

NEG_INF = float("-inf")


class Schedule:
    """The order in which a batch's nodes are scored, plus index tensors on its device.

    Nodes are renumbered by topological level ("rank"), so each level is a
    contiguous slice of the distance vector.
    """

    def __init__(self, batch: Batch):
        self.batch = batch
        n = batch.num_nodes
        self.num_nodes = n
        level = topological_levels(n, batch.src, batch.dst)
        self.acyclic = bool((level >= 0).all())
        if self.acyclic and n:
            node_order = np.argsort(level, kind="stable")
            num_levels = int(level.max()) + 1
        else:
            node_order = np.arange(n, dtype=np.int64)
            level = np.zeros(n, dtype=np.int64)
            num_levels = 1 if n else 0
        rank = np.empty(n, dtype=np.int64)
        rank[node_order] = np.arange(n, dtype=np.int64)
        self.rank = rank
        self.num_levels = num_levels
        bounds = np.searchsorted(level[node_order], np.arange(num_levels + 1))
        self.node_bounds = bounds.tolist()
        self.src_rank = rank[batch.src]
        self.dst_rank = rank[batch.dst]
        t = batch.tensor
        self.src_t, self.dst_t = t(self.src_rank), t(self.dst_rank)
        self.start_t = t(rank[batch.start])
        self.accept_t = t(rank[batch.accept])
        self.accept_graph_t = t(batch.accept_graph)
        self.arc_graph_t = t(batch.arc_graph)
        if self.acyclic:
            # Arcs grouped by the level of their destination (forward) and source (backward).
            self._in = _LevelArcs(level[batch.dst], num_levels, self.src_rank, self.dst_rank, bounds, t)
            self._out = _LevelArcs(level[batch.src], num_levels, self.dst_rank, self.src_rank, bounds, t)

    # ------------------------------------------------------------------ sweeps
    def _init(self, nodes: torch.Tensor, dtype) -> torch.Tensor:
        init = torch.full((self.num_nodes,), NEG_INF, dtype=dtype, device=self.batch.device)
        init[nodes] = 0.0
        return init

    def forward(self, weight: torch.Tensor, semiring: str) -> torch.Tensor:
        """Distance from any start node to every node (indexed by rank)."""
        init = self._init(self.start_t, weight.dtype)
        if not self.acyclic:
            return self._relax(init, self.src_t, self.dst_t, weight, semiring, "forward")
        return self._sweep(init, self._in, weight, semiring, range(1, self.num_levels))

    def backward(self, weight: torch.Tensor, semiring: str) -> torch.Tensor:
        """Distance from every node (by rank) to any accept node."""
        init = self._init(self.accept_t, weight.dtype)
        if not self.acyclic:
            return self._relax(init, self.dst_t, self.src_t, weight, semiring, "backward")
        return self._sweep(init, self._out, weight, semiring, range(self.num_levels - 2, -1, -1))

    def _sweep(self, dist, arcs: "_LevelArcs", weight, semiring, levels) -> torch.Tensor:
        w = weight.index_select(0, arcs.order)
        bounds = self.node_bounds
        for lv in levels:
            a0, a1 = arcs.bounds[lv], arcs.bounds[lv + 1]
            if a0 == a1:
                continue
            n0, n1 = bounds[lv], bounds[lv + 1]
            values = dist.index_select(0, arcs.far[a0:a1]) + w[a0:a1]
            reduced = segment_reduce(values, arcs.near[a0:a1], n1 - n0, semiring)
            dist[n0:n1] = plus(dist[n0:n1], reduced, semiring)
        return dist

    def _relax(self, init, from_t, to_t, weight, semiring, direction) -> torch.Tensor:
        """Jacobi relaxation to the fixed point, for graphs with cycles."""
        n = self.num_nodes
        if semiring == TROPICAL:
            max_rounds = n + 1
        else:
            max_rounds = 20 * n + 10_000
        tol = 4 * torch.finfo(init.dtype).eps
        dist = init
        for _ in range(max_rounds):
            reduced = segment_reduce(dist.index_select(0, from_t) + weight, to_t, n, semiring)
            new = plus(init, reduced, semiring)
            if _settled(new, dist, tol):
                return new
            dist = new
        if semiring == TROPICAL:
            why = "it has a cycle with positive total weight, so the best path is unbounded"
        else:
            why = (
                f"the {direction} sums did not converge after {max_rounds} rounds: a cycle whose weights "
                "do not decay (total weight >= 0 around the cycle) makes the sum over paths infinite"
            )
        raise ValueError(f"cannot score this graph: {why}")

    # ------------------------------------------------------------------ totals
    def total(self, alpha: torch.Tensor, semiring: str) -> torch.Tensor:
        """Per-graph score: semiring sum of the distances of its accept nodes."""
        return segment_reduce(alpha.index_select(0, self.accept_t), self.accept_graph_t, self.batch.size, semiring)

    def arc_posteriors(self, weight, alpha, beta, total) -> torch.Tensor:
        """exp(alpha[src] + w + beta[dst] - total) per arc; 0 where the graph has no path."""
        z = total.index_select(0, self.arc_graph_t)
        log_post = alpha.index_select(0, self.src_t) + weight + beta.index_select(0, self.dst_t) - z
        return torch.where(torch.isfinite(z), torch.exp(log_post), torch.zeros_like(log_post))

    def best_path_arcs(self, weight: torch.Tensor, alpha: torch.Tensor) -> tuple[list[np.ndarray], np.ndarray]:
        """Arcs of one best (tropical) path per graph, in path order, and whether each
        graph has an accepting path at all.

        Back-pointers follow only tight arcs (alpha[src] + w == alpha[dst]) and are
        chosen by breadth-first hop count, so zero-weight cycles cannot trap them.
        """
        batch = self.batch
        alpha_np = alpha.detach().cpu().numpy()
        w_np = weight.detach().cpu().numpy()
        a_src, a_dst = alpha_np[self.src_rank], alpha_np[self.dst_rank]
        tight = np.flatnonzero(np.isfinite(a_src) & (a_src + w_np == a_dst))
        start_rank = self.rank[batch.start]
        frontier = np.unique(start_rank[alpha_np[start_rank] == 0.0])
        back = np.full(self.num_nodes, -2, dtype=np.int64)  # -2 unreached, -1 path start
        back[frontier] = -1
        out = CSR(self.src_rank[tight], self.num_nodes)
        while frontier.size:
            arcs, _ = out.gather(frontier)
            arcs = tight[arcs]
            targets = self.dst_rank[arcs]
            fresh = back[targets] == -2
            targets, first = np.unique(targets[fresh], return_index=True)
            back[targets] = arcs[fresh][first]
            frontier = targets
        # Best accept node of each graph (first on ties).
        accept_rank = self.rank[batch.accept]
        scores = alpha_np[accept_rank]
        order = np.lexsort((-scores, batch.accept_graph))
        firsts = np.ones(order.size, dtype=bool)
        firsts[1:] = batch.accept_graph[order][1:] != batch.accept_graph[order][:-1]
        best = order[firsts]
        best = best[np.isfinite(scores[best])]
        has_path = np.zeros(batch.size, dtype=bool)
        has_path[batch.accept_graph[best]] = True
        current = np.full(batch.size, -1, dtype=np.int64)
        current[batch.accept_graph[best]] = accept_rank[best]
        steps = []
        while True:
            live = np.flatnonzero(current >= 0)
            arc = back[current[live]]
            moving = arc >= 0
            if not moving.any():
                break
            step = np.full(batch.size, -1, dtype=np.int64)
            step[live[moving]] = arc[moving]
            steps.append(step)
            current[:] = -1
            current[live[moving]] = self.src_rank[arc[moving]]
        if not steps:
            return [np.empty(0, dtype=np.int64) for _ in range(batch.size)], has_path
        path = np.stack(steps[::-1], axis=1)
        return [row[row >= 0] for row in path], has_path


class _LevelArcs:
    """Arcs sorted by the level of one endpoint: per level, `far` endpoints (ranks)
    feed the `near` endpoints (offsets within that level's node slice)."""

    def __init__(self, arc_level, num_levels, far_rank, near_rank, node_bounds, to_tensor):
        order = np.argsort(arc_level, kind="stable")
        sorted_level = arc_level[order]
        self.bounds = np.searchsorted(sorted_level, np.arange(num_levels + 1)).tolist()
        self.order = to_tensor(order)
        self.far = to_tensor(far_rank[order])
        self.near = to_tensor(near_rank[order] - node_bounds[sorted_level])


def _settled(new: torch.Tensor, old: torch.Tensor, tol: float) -> bool:
    same_inf = torch.equal(torch.isinf(new), torch.isinf(old))
    if not same_inf:
        return False
    finite = torch.isfinite(new)
    diff = (new[finite] - old[finite]).abs()
    return bool((diff <= tol * torch.clamp(new[finite].abs(), min=1.0)).all())


def schedule_for(batch: Batch) -> Schedule:
    """A Schedule, cached on the graph when the batch holds a single graph."""
    if batch.size == 1:
        return batch.graphs[0].cached("schedule", lambda: Schedule(batch))
    return Schedule(batch)


__all__ = ["Schedule", "schedule_for", "LOG", "TROPICAL"]
