"""Structural operations that keep every path's weight: connect, topsort, reverse, arc_sort."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import breadth_first_order

from ._arrays import topological_levels
from ._batch import Batch, assemble, per_batch, select
from .graph import Graph


def reachable(num_nodes: int, src: np.ndarray, dst: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Boolean mask of the nodes reachable from any of `sources` (BFS in compiled code)."""
    mask = np.zeros(num_nodes, dtype=bool)
    if sources.size == 0:
        return mask
    root = num_nodes  # a super-source with an arc to each source
    rows = np.concatenate([src, np.full(sources.size, root)])
    cols = np.concatenate([dst, sources])
    adjacency = scipy.sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(num_nodes + 1, num_nodes + 1)
    )
    order = breadth_first_order(adjacency, root, directed=True, return_predecessors=False)
    mask[order[order < num_nodes]] = True
    return mask


def connect(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Keep only nodes that lie on some path from a start node to an accept node."""

    def run(batch: Batch) -> list[Graph]:
        n = batch.num_nodes
        keep = reachable(n, batch.src, batch.dst, batch.start) & reachable(n, batch.dst, batch.src, batch.accept)
        return select(batch, keep, keep[batch.src] & keep[batch.dst])

    return per_batch(run, graphs)


def topsort(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Renumber nodes so every arc goes from a lower to a higher node; ValueError on a cycle."""

    def run(batch: Batch) -> list[Graph]:
        level = topological_levels(batch.num_nodes, batch.src, batch.dst)
        if (level < 0).any():
            graph = int(batch.node_graph[np.argmax(level < 0)])
            raise ValueError(f"topsort: graph {graph} has a cycle (node {int(np.argmax(level < 0) - batch.node_offset[graph])} is on or after it)")
        order = np.lexsort((level, batch.node_graph))
        new_id = np.empty(batch.num_nodes, dtype=np.int64)
        new_id[order] = np.arange(batch.num_nodes)
        arc_order = np.lexsort((new_id[batch.dst], new_id[batch.src]))
        return _relabel_nodes(batch, new_id, arc_order)

    return per_batch(run, graphs)


def _relabel_nodes(batch: Batch, new_id: np.ndarray, arc_order: np.ndarray) -> list[Graph]:
    """Assemble the batch with nodes renamed (`new_id` keeps each graph's nodes in its block)."""
    node_graph = np.empty(batch.num_nodes, dtype=np.int64)
    node_graph[new_id] = batch.node_graph
    weight = batch.weight.index_select(0, batch.tensor(arc_order))
    return assemble(
        batch.size, node_graph, new_id[batch.src[arc_order]], new_id[batch.dst[arc_order]],
        batch.ilabel[arc_order], batch.olabel[arc_order], weight,
        new_id[batch.start], new_id[batch.accept], batch.device, batch.dtype,
    )


def reverse(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Reverse every arc and swap start and accept nodes (a path's weight is unchanged)."""

    def run(batch: Batch) -> list[Graph]:
        return assemble(
            batch.size, batch.node_graph, batch.dst, batch.src, batch.ilabel, batch.olabel,
            batch.weight, batch.accept, batch.start, batch.device, batch.dtype,
        )

    return per_batch(run, graphs)


def arc_sort(graphs: Graph | Sequence[Graph], by: str = "ilabel") -> Graph | list[Graph]:
    """Order arcs by (src, label, olabel/ilabel, dst), as OpenFst's ArcSort orders each state's arcs."""
    if by not in ("ilabel", "olabel"):
        raise ValueError(f"arc_sort: by must be 'ilabel' or 'olabel', got {by!r}")

    def run(batch: Batch) -> list[Graph]:
        first, second = (batch.ilabel, batch.olabel) if by == "ilabel" else (batch.olabel, batch.ilabel)
        arc_order = np.lexsort((batch.dst, second, first, batch.src))
        return _relabel_nodes(batch, np.arange(batch.num_nodes), arc_order)

    return per_batch(run, graphs)
