"""Composition of transducers (and intersection of acceptors), differentiable in both inputs.

States of the result are triples (node of the first graph, node of the second,
epsilon-filter state), discovered breadth-first from the start pairs, so memory
grows with the output rather than with |Q1|*|Q2|. Each BFS layer is processed
in one vectorized step; the pairs are kept in a chunked sorted key table.

Epsilons follow OpenFst's sequence filter: between two matched labels the
first graph takes its output-epsilon moves before the second takes its
input-epsilon moves, so each path of the result is counted exactly once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._arrays import CSR, KeyTable, expand_ranges
from ._batch import Batch, assemble
from .graph import EPSILON, Graph, as_list
from .structure import connect


class _Side:
    """One operand's arcs indexed for matching on its composition-facing labels."""

    def __init__(self, batch: Batch, labels: np.ndarray, key_base: int):
        self.key_base = key_base
        real = np.flatnonzero(labels != EPSILON)
        keys = batch.src[real] * key_base + labels[real]
        order = np.argsort(keys, kind="stable")
        self.real = real[order]  # non-epsilon arcs sorted by (src, label)
        self.keys = keys[order]
        self.offsets = np.searchsorted(self.keys, np.arange(batch.num_nodes + 1) * key_base)
        eps = np.flatnonzero(labels == EPSILON)
        self.eps = eps
        self.eps_index = CSR(batch.src[eps], batch.num_nodes)

    def degree(self, nodes: np.ndarray) -> np.ndarray:
        return self.offsets[nodes + 1] - self.offsets[nodes]

    def arcs_of(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-epsilon arcs leaving each node, and which node (index into `nodes`) each left."""
        flat, owner = expand_ranges(self.offsets[nodes], self.degree(nodes))
        return self.real[flat], owner

    def matches(self, nodes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arcs leaving nodes[i] with label labels[i], for all i; returns (arcs, i)."""
        keys = nodes * self.key_base + labels
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        flat, owner = expand_ranges(lo, hi - lo)
        return self.real[flat], owner

    def epsilon_arcs_of(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arcs, owner = self.eps_index.gather(nodes)
        return self.eps[arcs], owner


def _pair_starts(a: Batch, b: Batch) -> tuple[np.ndarray, np.ndarray]:
    """All (start of a_i, start of b_i) pairs, for each i."""
    partners, owner = CSR(b.start_graph, b.size).gather(a.start_graph)
    return a.start[owner], b.start[partners]


def _compose_batches(a: Batch, b: Batch) -> list[Graph]:
    key_base = int(max(a.olabel.max(initial=0), b.ilabel.max(initial=0))) + 1
    left = _Side(a, a.olabel, key_base)
    right = _Side(b, b.ilabel, key_base)
    n2 = max(b.num_nodes, 1)

    def encode(q1, q2, f):
        return (q1 * n2 + q2) * 2 + f

    has_eps1 = (np.bincount(a.src[left.eps], minlength=a.num_nodes) > 0).astype(np.int64)
    is_accept1 = np.zeros(a.num_nodes, dtype=bool)
    is_accept1[a.accept] = True
    dead_end_after_eps2 = (left.degree(np.arange(a.num_nodes)) == 0) & (has_eps1 > 0) & ~is_accept1

    table = KeyTable()
    start1, start2 = _pair_starts(a, b)
    zeros = np.zeros(start1.size, dtype=np.int64)
    start_ids, _ = table.add(encode(start1, start2, zeros))  # distinct pairs: ids 0..k-1 in order
    frontier = (start1, start2, zeros, start_ids)
    state_q1, state_q2 = [start1], [start2]
    none = np.empty(0, dtype=np.int64)
    out_src, out_dst, out_a1, out_a2 = [none], [none], [none], [none]

    while frontier[0].size:
        q1, q2, f, ids = frontier
        # Matched labels: iterate the side with fewer arcs at this pair, search the other.
        from_left = np.flatnonzero(left.degree(q1) <= right.degree(q2))
        arcs1_l, owner = left.arcs_of(q1[from_left])
        arcs2_l, hit = right.matches(q2[from_left][owner], a.olabel[arcs1_l])
        state_l, arcs1_l = from_left[owner[hit]], arcs1_l[hit]
        from_right = np.flatnonzero(left.degree(q1) > right.degree(q2))
        arcs2_r, owner = right.arcs_of(q2[from_right])
        arcs1_r, hit = left.matches(q1[from_right][owner], b.ilabel[arcs2_r])
        state_r, arcs2_r = from_right[owner[hit]], arcs2_r[hit]
        # The first graph moves alone on an output epsilon (only before the second has moved alone).
        may_move = np.flatnonzero(f == 0)
        eps1, owner = left.epsilon_arcs_of(q1[may_move])
        state_e1 = may_move[owner]
        # The second graph moves alone on an input epsilon. Afterwards the first may not move
        # alone (filter 1) unless it has no epsilon to move on (then filter 0 blocks nothing);
        # where the first can only move on epsilons and cannot stop, such a move is a dead end.
        movable = np.flatnonzero(~dead_end_after_eps2[q1])
        eps2, owner = right.epsilon_arcs_of(q2[movable])
        state_e2 = movable[owner]
        matched1 = np.concatenate([arcs1_l, arcs1_r])
        matched2 = np.concatenate([arcs2_l, arcs2_r])
        none1, none2 = np.full(state_e2.size, -1), np.full(state_e1.size, -1)
        state = np.concatenate([state_l, state_r, state_e1, state_e2])
        arcs1 = np.concatenate([matched1, eps1, none1])
        arcs2 = np.concatenate([matched2, none2, eps2])
        dst1 = np.concatenate([a.dst[matched1], a.dst[eps1], q1[state_e2]])
        dst2 = np.concatenate([b.dst[matched2], q2[state_e1], b.dst[eps2]])
        dst_f = np.concatenate([np.zeros(matched1.size + eps1.size, dtype=np.int64), has_eps1[q1[state_e2]]])

        dst_ids, new_ids = table.add(encode(dst1, dst2, dst_f))
        out_src.append(ids[state])
        out_dst.append(dst_ids)
        out_a1.append(arcs1)
        out_a2.append(arcs2)
        # New states got consecutive ids; take each one's (q1, q2, f) from its first occurrence.
        candidates = np.flatnonzero(dst_ids >= table.size - new_ids.size)
        first = candidates[np.unique(dst_ids[candidates], return_index=True)[1]]
        frontier = (dst1[first], dst2[first], dst_f[first], dst_ids[first])
        state_q1.append(frontier[0])
        state_q2.append(frontier[1])

    return _build(
        a, b, start1.size, np.concatenate(state_q1), np.concatenate(state_q2),
        np.concatenate(out_src), np.concatenate(out_dst), np.concatenate(out_a1), np.concatenate(out_a2),
    )


def _build(a: Batch, b: Batch, num_starts, q1, q2, src, dst, arcs1, arcs2) -> list[Graph]:
    """Turn discovered states and matched arc pairs into graphs; weights are w1 + w2."""
    ilabel = np.append(a.ilabel, EPSILON)[arcs1]  # index -1 (that side did not move) picks EPSILON
    olabel = np.append(b.olabel, EPSILON)[arcs2]
    dtype = torch.promote_types(a.dtype, b.dtype)
    w1 = _gather_or_zero(a, arcs1, dtype)
    w2 = _gather_or_zero(b, arcs2, dtype)
    is_accept1 = np.zeros(a.num_nodes, dtype=bool)
    is_accept1[a.accept] = True
    is_accept2 = np.zeros(b.num_nodes, dtype=bool)
    is_accept2[b.accept] = True
    accept = np.flatnonzero(is_accept1[q1] & is_accept2[q2])
    start = np.arange(num_starts, dtype=np.int64)
    return assemble(a.size, a.node_graph[q1], src, dst, ilabel, olabel, w1 + w2, start, accept, a.device, dtype)


def _gather_or_zero(batch: Batch, arcs: np.ndarray, dtype) -> torch.Tensor:
    """Weights of the given arcs, 0 where the arc index is -1 (that side did not move)."""
    padded = torch.cat([batch.weight.to(dtype), torch.zeros(1, dtype=dtype, device=batch.device)])
    return padded.index_select(0, batch.tensor(np.where(arcs >= 0, arcs, batch.num_arcs)))


def _operands(first, second) -> tuple[Batch, Batch, bool]:
    """Pair up arguments: graph with graph, list with list, or one graph with every item of a list."""
    items1, single1 = as_list(first)
    items2, single2 = as_list(second)
    if single1 and not single2:
        items1 = items1 * len(items2)
    elif single2 and not single1:
        items2 = items2 * len(items1)
    elif len(items1) != len(items2):
        raise ValueError(f"compose: lists of different lengths ({len(items1)} and {len(items2)})")
    a, b = Batch(items1), Batch(items2)
    if a.device != b.device:
        raise ValueError(f"compose: graphs are on different devices ({a.device} and {b.device})")
    return a, b, single1 and single2


def compose(first: Graph | Sequence[Graph], second: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Compose transducers: a path of the result maps x to z with weight w1 + w2 wherever
    the first maps x to y with w1 and the second maps y to z with w2.

    Takes graphs or lists (paired item by item; a single graph pairs with every item).
    The result is trimmed to nodes on accepting paths and differentiable in both inputs.
    """
    a, b, single = _operands(first, second)
    result = connect(_compose_batches(a, b)) if a.size else []
    return result[0] if single else result


def intersect(first: Graph | Sequence[Graph], second: Graph | Sequence[Graph]) -> Graph | list[Graph]:
    """Intersect acceptors: the paths whose label sequence both accept, with summed weights."""
    for items in (as_list(first)[0], as_list(second)[0]):
        for g in items:
            if not g.is_acceptor():
                raise ValueError("intersect: inputs must be acceptors (ilabel == olabel); use compose for transducers")
    return compose(first, second)
