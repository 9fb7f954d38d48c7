"""Rational operations (union, concatenation, closure) and label rewrites (projection, inversion).

New arcs added by union/concat/closure are epsilon arcs of weight 0, so every
output weight is an input weight and gradients reach each input graph.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._arrays import CSR
from ._batch import Batch, assemble, per_batch
from .graph import EPSILON, Graph, as_list


def _add_epsilon_arcs(batch: Batch, node_graph, src, dst, start, accept, num_graphs: int = 1) -> list[Graph]:
    """The batch's nodes (`node_graph` assigns them, and any new ones, to output graphs)
    and arcs plus new epsilon arcs src -> dst of weight 0."""
    eps = np.full(src.size, EPSILON, dtype=np.int64)
    weight = torch.cat([batch.weight, torch.zeros(src.size, dtype=batch.dtype, device=batch.device)])
    return assemble(
        num_graphs, node_graph, np.concatenate([batch.src, src]), np.concatenate([batch.dst, dst]),
        np.concatenate([batch.ilabel, eps]), np.concatenate([batch.olabel, eps]),
        weight, start, accept, batch.device, batch.dtype,
    )


def union(graphs: Sequence[Graph]) -> Graph:
    """A graph accepting what any of the graphs accepts (their disjoint union)."""
    items, _ = as_list(graphs)
    batch = Batch(items)
    none = np.empty(0, dtype=np.int64)
    return _add_epsilon_arcs(batch, np.zeros(batch.num_nodes, dtype=np.int64), none, none, batch.start, batch.accept)[0]


def concat(*graphs: Graph | Sequence[Graph]) -> Graph:
    """Concatenation `concat(g1, g2, ...)` or `concat([g1, g2, ...])`: epsilon arcs join
    every accept node of one graph to every start node of the next. No graphs: the
    graph accepting only the empty sequence."""
    items = list(graphs[0]) if len(graphs) == 1 and not isinstance(graphs[0], Graph) else list(graphs)
    items, _ = as_list(items)
    if not items:
        empty = Graph()
        empty.add_node(start=True, accept=True)
        return empty
    batch = Batch(items)
    # Each accept node of graph i links to each start node of graph i + 1.
    linked = batch.accept_graph < batch.size - 1
    partners, owner = CSR(batch.start_graph, batch.size).gather(batch.accept_graph[linked] + 1)
    src = batch.accept[linked][owner]
    dst = batch.start[partners]
    first_starts = batch.start[batch.start_graph == 0]
    last_accepts = batch.accept[batch.accept_graph == batch.size - 1]
    return _add_epsilon_arcs(batch, np.zeros(batch.num_nodes, dtype=np.int64), src, dst, first_starts, last_accepts)[0]


def closure(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Kleene star: a new start-and-accept node with epsilon arcs to the old start nodes
    and from the old accept nodes, so each way of splitting a sequence is one path."""

    def run(batch: Batch) -> list[Graph]:
        hub = batch.num_nodes + np.arange(batch.size, dtype=np.int64)
        src = np.concatenate([hub[batch.start_graph], batch.accept])
        dst = np.concatenate([batch.start, hub[batch.accept_graph]])
        node_graph = np.concatenate([batch.node_graph, np.arange(batch.size, dtype=np.int64)])
        return _add_epsilon_arcs(batch, node_graph, src, dst, hub, hub, batch.size)

    return per_batch(run, graphs)


def _relabel(graphs, pick):
    def run(batch: Batch) -> list[Graph]:
        ilabel, olabel = pick(batch.ilabel, batch.olabel)
        return assemble(
            batch.size, batch.node_graph, batch.src, batch.dst, ilabel, olabel,
            batch.weight, batch.start, batch.accept, batch.device, batch.dtype,
        )

    return per_batch(run, graphs)


def project_input(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """The acceptor of input labels (olabel := ilabel)."""
    return _relabel(graphs, lambda i, o: (i, i))


def project_output(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """The acceptor of output labels (ilabel := olabel)."""
    return _relabel(graphs, lambda i, o: (o, o))


def invert(graphs: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Swap input and output labels."""
    return _relabel(graphs, lambda i, o: (o, i))
