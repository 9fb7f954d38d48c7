"""A list of graphs laid end to end, so one vectorized pass processes all of them.

`Batch` concatenates structure (NumPy, global node ids) and weights (one torch
tensor, so gradients reach every input graph). `assemble` is the inverse: it
splits global arrays produced by an algorithm back into one Graph per item.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .graph import Graph, as_list


def per_batch(fn, graphs) -> "Graph | list[Graph]":
    """Run `fn(Batch) -> list[Graph]` on a graph or a list, returning the same shape."""
    items, single = as_list(graphs)
    result = fn(Batch(items))
    return result[0] if single else result


class Batch:
    """Concatenated structure and weights of a list of graphs."""

    def __init__(self, graphs: Sequence[Graph]):
        self.graphs = list(graphs)
        self.size = len(self.graphs)
        devices = {g.device for g in self.graphs}
        if len(devices) > 1:
            raise ValueError(f"graphs are on mixed devices: {sorted(map(str, devices))}")
        self.device = devices.pop() if devices else torch.device("cpu")
        self.dtype = common_dtype(self.graphs)
        structs = [g.numpy() for g in self.graphs]
        node_counts = np.array([s.num_nodes for s in structs], dtype=np.int64)
        arc_counts = np.array([s.src.size for s in structs], dtype=np.int64)
        self.node_offset = np.concatenate([[0], np.cumsum(node_counts)]).astype(np.int64)
        self.arc_offset = np.concatenate([[0], np.cumsum(arc_counts)]).astype(np.int64)
        self.num_nodes = int(self.node_offset[-1])
        self.num_arcs = int(self.arc_offset[-1])
        self.node_graph = np.repeat(np.arange(self.size, dtype=np.int64), node_counts)
        self.arc_graph = np.repeat(np.arange(self.size, dtype=np.int64), arc_counts)
        arc_shift = self.node_offset[:-1][self.arc_graph]
        self.src = _cat([s.src for s in structs]) + arc_shift
        self.dst = _cat([s.dst for s in structs]) + arc_shift
        self.ilabel = _cat([s.ilabel for s in structs])
        self.olabel = _cat([s.olabel for s in structs])
        self.start, self.start_graph = self._nodes([s.start for s in structs])
        self.accept, self.accept_graph = self._nodes([s.accept for s in structs])

    def _nodes(self, per_graph: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        owner = np.repeat(np.arange(self.size, dtype=np.int64), [a.size for a in per_graph])
        return _cat(per_graph) + self.node_offset[:-1][owner], owner

    @property
    def weight(self) -> torch.Tensor:
        """All arc weights in one tensor (differentiable concatenation)."""
        weights = [g.weight.to(self.dtype) for g in self.graphs]
        if not weights:
            return torch.empty(0, dtype=self.dtype, device=self.device)
        return weights[0] if len(weights) == 1 else torch.cat(weights)

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """A NumPy index array as a long tensor on the batch's device."""
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(self.device)


def common_dtype(graphs: Sequence[Graph]) -> torch.dtype:
    """The weight dtype that holds every graph's weights (torch's type promotion; float32 for none)."""
    dtype = graphs[0].dtype if graphs else torch.float32
    for g in graphs[1:]:
        dtype = torch.promote_types(dtype, g.dtype)
    return dtype


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.empty(0, dtype=np.int64)
    return np.concatenate(arrays).astype(np.int64, copy=False)


def assemble(
    num_graphs: int,
    node_graph: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    ilabel: np.ndarray,
    olabel: np.ndarray,
    weight: torch.Tensor,
    start: np.ndarray,
    accept: np.ndarray,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Graph]:
    """Split global arrays into `num_graphs` graphs. `node_graph[n]` says which graph
    global node n belongs to; nodes keep their relative order inside each graph and
    arcs keep theirs. Arcs and start/accept nodes may come in any graph order."""
    node_counts = np.bincount(node_graph, minlength=num_graphs).astype(np.int64)
    node_order = np.argsort(node_graph, kind="stable")
    local = np.empty(node_graph.size, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(node_counts)])
    local[node_order] = np.arange(node_graph.size, dtype=np.int64) - offsets[node_graph[node_order]]

    arc_graph = node_graph[src] if src.size else np.empty(0, dtype=np.int64)
    arc_order = np.argsort(arc_graph, kind="stable")
    arc_counts = np.bincount(arc_graph, minlength=num_graphs).tolist()
    if not np.array_equal(arc_order, np.arange(arc_order.size)):
        src, dst, ilabel, olabel = (a[arc_order] for a in (src, dst, ilabel, olabel))
        weight = weight.index_select(0, torch.from_numpy(arc_order).to(weight.device))
        arc_graph = arc_graph[arc_order]
    columns = [torch.from_numpy(np.ascontiguousarray(c)).to(device) for c in (local[src], local[dst], ilabel, olabel)]
    columns = [torch.split(c, arc_counts) for c in columns]
    weights = torch.split(weight.to(device=device, dtype=dtype), arc_counts)
    starts = _split_nodes(start, node_graph, local, num_graphs, device)
    accepts = _split_nodes(accept, node_graph, local, num_graphs, device)

    return [
        Graph.from_tensors(node_counts[b], *(column[b] for column in columns), weights[b], starts[b], accepts[b])
        for b in range(num_graphs)
    ]


def _split_nodes(nodes, node_graph, local, num_graphs, device):
    """Per-graph sorted, de-duplicated local ids of global `nodes`."""
    owner = node_graph[nodes]
    order = np.lexsort((local[nodes], owner))
    nodes_sorted = nodes[order]
    owner = owner[order]
    keep = np.ones(nodes_sorted.size, dtype=bool)
    keep[1:] = nodes_sorted[1:] != nodes_sorted[:-1]
    nodes_sorted, owner = nodes_sorted[keep], owner[keep]
    counts = np.bincount(owner, minlength=num_graphs).tolist()
    return torch.split(torch.from_numpy(local[nodes_sorted]).to(device), counts)


def select(batch: Batch, node_mask: np.ndarray, arc_mask: np.ndarray) -> list[Graph]:
    """The sub-graphs of a batch keeping the masked nodes and arcs (arcs between dropped
    nodes must be dropped too); nodes are renumbered in their original order."""
    new_id = np.cumsum(node_mask) - 1
    arcs = np.flatnonzero(arc_mask)
    start = batch.start[node_mask[batch.start]]
    accept = batch.accept[node_mask[batch.accept]]
    weight = batch.weight
    if arcs.size != batch.num_arcs:
        weight = weight.index_select(0, batch.tensor(arcs))
    return assemble(
        batch.size, batch.node_graph[node_mask], new_id[batch.src[arcs]], new_id[batch.dst[arcs]],
        batch.ilabel[arcs], batch.olabel[arcs], weight, new_id[start], new_id[accept], batch.device, batch.dtype,
    )
