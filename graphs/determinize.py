"""Determinization and minimization of weighted acceptors (log and tropical semirings).

Structure is computed on the host with vectorized NumPy, one step per subset
frontier (determinize) or refinement round (minimize); weights are computed as
float64 torch tensors on the graph's device and returned detached in the input
dtype: these operations are not differentiable. (Merges are decided on rounded
weights and a merged item keeps its first member's weights, so autograd through
the construction would not give the derivative of the string scores.)

Final weights. Our graphs have none, so a result node whose final weight is
exactly One (score 0) is an accept node, and any other final weight w becomes
an epsilon arc of weight w into one extra accept node per graph that has no
outgoing arcs. Both operations read such "final-weight arcs" (an epsilon arc
into an accept node without outgoing arcs) back as final weights of their
source, so `minimize(determinize(g))` and repeated calls work; any other
epsilon arc is rejected. Arcs with score -inf (the semiring zero) are dropped,
and so are nodes not on a path from a start node to an accept node.

Quantisation. Weights are compared after rounding to multiples of `delta`
(default 1/1024, OpenFst's kDelta): determinize keys subsets on residuals
rounded that way, minimize merges nodes whose pushed weights round the same.
Rounding only decides what is merged; result weights are the exact values of
the first member found, so two merged items differ by less than about `delta`.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

from ._arrays import CSR, KeyTable, expand_ranges, unique_first
from ._batch import Batch, assemble
from ._semiring import TROPICAL, check_semiring, plus, segment_reduce
from .graph import EPSILON, Graph, as_list
from .structure import reachable

DELTA = 1.0 / 1024
_WORK = torch.float64
_NEG_INF = float("-inf")


def determinize(
    graphs: Graph | Sequence[Graph],
    semiring: str = "log",
    *,
    delta: float = DELTA,
    max_nodes: int = 1_000_000,
) -> Graph | list[Graph]:
    """Weighted subset construction (Mohri) for epsilon-free acceptors.

    Each result node is a subset of (input node, residual score) pairs whose
    residuals semiring-sum to 0; all start nodes form the initial subset. The
    result is deterministic (one start node, at most one arc per node and label,
    plus at most one final-weight epsilon arc) and gives every string the same
    score as the input. Raises ValueError on transducers, epsilon arcs other than
    final-weight arcs, and when a graph needs more than `max_nodes` subsets, which
    happens when it is not determinizable (e.g. cycles that fail the twins property).
    Not differentiable: the result's weights are detached.
    """
    prep = _Input(graphs, semiring, "determinize")
    batch = prep.batch
    keep = prep.trim()
    arc = np.flatnonzero(keep[prep.src] & keep[prep.dst])
    src, dst, label = prep.src[arc], prep.dst[arc], prep.label[arc]
    weight = prep.weight[batch.tensor(arc)]
    out_arcs = CSR(src, batch.num_nodes)

    start = batch.start[keep[batch.start]]
    start_graph = batch.node_graph[start]
    initial_graphs, initial_counts = np.unique(start_graph, return_counts=True)
    initial_offsets = np.cumsum(initial_counts) - initial_counts
    table = _SubsetTable()
    initial, _ = table.find_or_add(start, np.zeros_like(start), initial_offsets, initial_counts)
    subset_ids, subset_graph = [initial], [initial_graphs]
    subsets_per_graph = np.zeros(batch.size, dtype=np.int64)
    subsets_per_graph[initial_graphs] = 1

    frontier_subset = np.repeat(initial, initial_counts)
    frontier_state = start
    frontier_residual = torch.zeros(start.size, dtype=_WORK, device=batch.device)
    arcs_src, arcs_dst, arcs_label, arcs_weight = [], [], [], []
    final_subset, final_weight = [], []
    while frontier_state.size:
        # Final weight of each new subset: semiring sum over its final elements.
        is_final = prep.is_final[frontier_state]
        if is_final.any():
            owners, owner_index = np.unique(frontier_subset[is_final], return_inverse=True)
            values = frontier_residual[batch.tensor(np.flatnonzero(is_final))] + prep.final[
                batch.tensor(frontier_state[is_final])
            ]
            final_subset.append(owners)
            final_weight.append(segment_reduce(values, batch.tensor(owner_index), owners.size, semiring))

        # Expand every arc of every element; group by (subset, label, target node).
        item_arc, item_owner = out_arcs.gather(frontier_state)
        if not item_arc.size:
            break
        item_subset, item_label, item_state = frontier_subset[item_owner], label[item_arc], dst[item_arc]
        order = np.lexsort((item_state, item_label, item_subset))
        item_subset, item_label, item_state = item_subset[order], item_label[order], item_state[order]
        item_value = (frontier_residual[batch.tensor(item_owner)] + weight[batch.tensor(item_arc)])[batch.tensor(order)]
        new_element = _run_starts(item_subset, item_label, item_state)
        element_of_item = np.cumsum(new_element) - 1
        element = np.flatnonzero(new_element)
        elem_subset, elem_label, elem_state = item_subset[element], item_label[element], item_state[element]
        elem_value = segment_reduce(item_value, batch.tensor(element_of_item), element.size, semiring)

        # One candidate subset per (subset, label): arc weight = semiring sum, residuals normalised.
        new_group = _run_starts(elem_subset, elem_label)
        group_of_elem = batch.tensor(np.cumsum(new_group) - 1)
        group_start = np.flatnonzero(new_group)
        group_length = np.diff(np.append(group_start, element.size))
        group_weight = segment_reduce(elem_value, group_of_elem, group_start.size, semiring)
        residual = elem_value - group_weight[group_of_elem]
        ids, is_new = table.find_or_add(elem_state, _quantise(residual, delta), group_start, group_length)
        arcs_src.append(elem_subset[group_start])
        arcs_dst.append(ids)
        arcs_label.append(elem_label[group_start])
        arcs_weight.append(group_weight)

        # New subsets form the next frontier.
        fresh = np.flatnonzero(is_new)
        fresh_graph = batch.node_graph[elem_state[group_start[fresh]]]
        subset_ids.append(ids[fresh])
        subset_graph.append(fresh_graph)
        subsets_per_graph += np.bincount(fresh_graph, minlength=batch.size)
        if subsets_per_graph.max(initial=0) > max_nodes:
            g = int(np.argmax(subsets_per_graph))
            raise ValueError(
                f"determinize: graph {g} needs more than max_nodes={max_nodes} subsets; it is probably not "
                "determinizable (cycles whose weights fail the twins property), or raise max_nodes"
            )
        flat, owner = expand_ranges(group_start[fresh], group_length[fresh])
        frontier_subset = ids[fresh][owner]
        frontier_state = elem_state[flat]
        frontier_residual = residual[batch.tensor(flat)]

    node_graph = np.empty(table.size, dtype=np.int64)
    node_graph[np.concatenate(subset_ids)] = np.concatenate(subset_graph)
    return _emit(
        prep,
        node_graph=node_graph,
        src=_cat(arcs_src),
        dst=_cat(arcs_dst),
        label=_cat(arcs_label),
        weight=_cat_weights(arcs_weight, batch.device),
        final_node=_cat(final_subset),
        final_weight=_cat_weights(final_weight, batch.device),
        start=initial,
    )


def minimize(
    graphs: Graph | Sequence[Graph],
    semiring: str = "log",
    *,
    delta: float = DELTA,
    max_iterations: int = 100_000,
) -> Graph | list[Graph]:
    """Minimal deterministic acceptor with the same string scores.

    The input must be deterministic: at most one start node, no two arcs with the
    same label leaving a node, and no epsilon arcs except final-weight arcs (as
    `determinize` makes; several from one node are summed). Weighted inputs are
    first pushed toward the start (each node's outgoing arcs and final weight then
    semiring-sum to 0), then nodes are merged by partition refinement (Moore rounds)
    on (final weight, label, weight, target class). The total weight removed by
    pushing is put back on the start node's arcs and final weight; when it is not 0
    and the start node has incoming arcs, the start node is first copied into a
    fresh start node without any (one extra node, as OpenFst's push adds one).
    Unweighted inputs are not pushed, so their result has exactly as many nodes as
    OpenFst's minimize. Pushing raises ValueError when a node's total score is
    infinite (log: cycles with probability mass >= 1; tropical: a cycle with
    positive score), detected as not converging within `max_iterations` rounds
    (tropical: within one more round than there are nodes). Not differentiable: the
    result's weights are detached.
    """
    prep = _Input(graphs, semiring, "minimize")
    batch = prep.batch
    many = np.flatnonzero(np.bincount(batch.start_graph, minlength=batch.size) > 1)
    if many.size:
        raise ValueError(f"minimize: graph {many[0]} has several start nodes; determinize it first")
    order = np.lexsort((prep.label, prep.src))
    src, label = prep.src[order], prep.label[order]
    twin = np.flatnonzero((src[1:] == src[:-1]) & (label[1:] == label[:-1]))
    if twin.size:
        node = src[twin[0]]
        g = batch.node_graph[node]
        raise ValueError(
            f"minimize: graph {g} is not deterministic (node {node - batch.node_offset[g]} has two arcs "
            f"with label {label[twin[0]]}); determinize it first"
        )

    # Work on the trimmed graph, with nodes renumbered 0..n-1 in input order.
    keep = prep.trim()
    node = np.flatnonzero(keep)
    n = node.size
    local = np.full(batch.num_nodes, -1, dtype=np.int64)
    local[node] = np.arange(n)
    arc = order[keep[src] & keep[prep.dst[order]]]
    src, dst, label = local[prep.src[arc]], local[prep.dst[arc]], prep.label[arc]
    weight = prep.weight[batch.tensor(arc)]
    final = prep.final[batch.tensor(node)]
    is_final = prep.is_final[node]
    node_graph = batch.node_graph[node]
    start = local[batch.start[keep[batch.start]]]

    weighted = bool((weight != 0).any()) or bool((final[batch.tensor(np.flatnonzero(is_final))] != 0).any())
    if weighted:
        potential = _potential(n, batch.tensor(src), batch.tensor(dst), weight, final, semiring, max_iterations)
    else:
        potential = torch.zeros(n, dtype=_WORK, device=batch.device)
    weight = weight + potential[batch.tensor(dst)] - potential[batch.tensor(src)]
    final = final - potential

    cls = _refine(
        node_columns=[node_graph, is_final, np.where(is_final, _quantise(final, delta), 0)],
        arc_src=src,
        arc_columns=[label, _quantise(weight, delta)],
        arc_dst=dst,
        num_nodes=n,
    )
    num_classes = int(cls.max(initial=-1)) + 1
    first = np.unique(cls, return_index=True)[1]
    rep_arc = np.flatnonzero(first[cls[src]] == src)
    out_src, out_dst, out_label = cls[src[rep_arc]], cls[dst[rep_arc]], label[rep_arc]
    out_weight = weight[batch.tensor(rep_arc)]
    out_final = final[batch.tensor(first)]
    out_graph = node_graph[first]

    # Put the total weight back: on the start class, or on a copy of it that has no incoming arcs.
    start_class = cls[start]
    total = potential[batch.tensor(start)]
    shifted = total.cpu().numpy() != 0
    entered = np.isin(start_class, out_dst)
    copy = np.flatnonzero(shifted & entered)
    copy_node = num_classes + np.arange(copy.size)
    copied_arc, copy_owner = CSR(out_src, num_classes).gather(start_class[copy])
    out_src = np.concatenate([out_src, copy_node[copy_owner]])
    out_dst = np.concatenate([out_dst, out_dst[copied_arc]])
    out_label = np.concatenate([out_label, out_label[copied_arc]])
    out_weight = torch.cat([out_weight, out_weight[batch.tensor(copied_arc)]])
    out_final = torch.cat([out_final, out_final[batch.tensor(start_class[copy])]])
    out_graph = np.concatenate([out_graph, out_graph[start_class[copy]]])
    start_class[copy] = copy_node
    shift = torch.zeros(out_graph.size, dtype=_WORK, device=batch.device)
    shift[batch.tensor(start_class[shifted])] = total[batch.tensor(np.flatnonzero(shifted))]
    out_weight = out_weight + shift[batch.tensor(out_src)]
    out_final = out_final + shift

    final_node = np.flatnonzero(np.isfinite(out_final.cpu().numpy()))
    return _emit(
        prep,
        node_graph=out_graph,
        src=out_src,
        dst=out_dst,
        label=out_label,
        weight=out_weight,
        final_node=final_node,
        final_weight=out_final[batch.tensor(final_node)],
        start=start_class,
    )


class _Input:
    """Checked, batched input of both operations: labelled arcs with finite scores
    (host structure, float64 weights) and each node's final weight (-inf if none)."""

    def __init__(self, graphs, semiring: str, name: str):
        check_semiring(semiring)
        graph_list, self.single = as_list(graphs)
        self.batch = batch = Batch(graph_list)
        bad = np.flatnonzero(batch.ilabel != batch.olabel)
        if bad.size:
            g, a = self._locate_arc(bad[0])
            raise ValueError(
                f"{name} needs acceptors, but graph {g} has arc {a} with ilabel {batch.ilabel[bad[0]]} != olabel "
                f"{batch.olabel[bad[0]]}; project it first"
            )
        weight = batch.weight.detach().to(_WORK)
        live = (weight > _NEG_INF).cpu().numpy()
        n = batch.num_nodes
        accept = np.zeros(n, dtype=bool)
        accept[batch.accept] = True
        sink = accept & (np.bincount(batch.src[live], minlength=n) == 0)
        epsilon = live & (batch.ilabel == EPSILON)
        final_arc = epsilon & sink[batch.dst]
        stray = np.flatnonzero(epsilon & ~final_arc)
        if stray.size:
            g, a = self._locate_arc(stray[0])
            raise ValueError(
                f"{name}: graph {g} has an epsilon arc (arc {a}) that is not a final-weight arc (an epsilon arc "
                "into an accept node without outgoing arcs); call remove_epsilon first"
            )
        fa = np.flatnonzero(final_arc)
        final = torch.full((n,), _NEG_INF, dtype=_WORK, device=batch.device)
        final[batch.tensor(batch.accept)] = 0.0
        arc_final = segment_reduce(weight[batch.tensor(fa)], batch.tensor(batch.src[fa]), n, semiring)
        self.final = plus(final, arc_final, semiring)
        self.is_final = accept | (np.bincount(batch.src[fa], minlength=n) > 0)
        arc = np.flatnonzero(live & ~epsilon)
        self.src, self.dst, self.label = batch.src[arc], batch.dst[arc], batch.ilabel[arc]
        self.weight = weight[batch.tensor(arc)]

    def _locate_arc(self, arc: int) -> tuple[int, int]:
        g = int(self.batch.arc_graph[arc])
        return g, int(arc - self.batch.arc_offset[g])

    def trim(self) -> np.ndarray:
        """Mask of nodes on some path from a start node to a final node."""
        n = self.batch.num_nodes
        forward = reachable(n, self.src, self.dst, self.batch.start)
        backward = reachable(n, self.dst, self.src, np.flatnonzero(self.is_final))
        return forward & backward


def _emit(prep: _Input, node_graph, src, dst, label, weight, final_node, final_weight, start):
    """Turn final weights into accept nodes (weight exactly 0) or final-weight epsilon
    arcs into one new accept node per graph, and split the result into graphs."""
    batch = prep.batch
    one = final_weight.cpu().numpy() == 0
    other = np.flatnonzero(~one)
    needs = np.unique(node_graph[final_node[other]])
    sink = node_graph.size + np.arange(needs.size, dtype=np.int64)
    sink_of_graph = np.full(batch.size, -1, dtype=np.int64)
    sink_of_graph[needs] = sink
    eps_src = final_node[other]
    labels = np.concatenate([label, np.full(other.size, EPSILON)]).astype(np.int64)
    graphs = assemble(
        batch.size,
        np.concatenate([node_graph, needs]).astype(np.int64),
        np.concatenate([src, eps_src]).astype(np.int64),
        np.concatenate([dst, sink_of_graph[node_graph[eps_src]]]).astype(np.int64),
        labels,
        labels,
        torch.cat([weight, final_weight[batch.tensor(other)]]).to(batch.dtype),
        np.asarray(start, dtype=np.int64),
        np.concatenate([final_node[one], sink]).astype(np.int64),
        batch.device,
        batch.dtype,
    )
    return graphs[0] if prep.single else graphs


def _potential(n, src, dst, weight, final, semiring, max_iterations):
    """Semiring sum of the scores of all paths from each node to a final node (Jacobi
    rounds until nothing changes beyond float noise; tropical ones settle within n + 1
    rounds unless a cycle has positive score, as in Bellman-Ford)."""
    potential = final
    rounds = min(max_iterations, n + 2) if semiring == TROPICAL else max_iterations
    for _ in range(rounds):
        update = plus(final, segment_reduce(weight + potential[dst], src, n, semiring), semiring)
        if bool((torch.isnan(update) | (update == float("inf"))).any()):
            break
        change = torch.where(update == potential, 0.0, (update - potential).abs()).max()
        potential = update
        if change <= 1e-12 * (1 + update[torch.isfinite(update)].abs().max()):
            return potential
    raise ValueError(
        "minimize: cannot push weights, the total score of some node does not converge (a cycle with "
        "positive score in the tropical semiring, or with probability mass >= 1 in the log semiring)"
    )


def _refine(node_columns, arc_src, arc_columns, arc_dst, num_nodes) -> np.ndarray:
    """Coarsest partition of nodes that respects `node_columns` and is stable under arcs
    (Moore rounds); arcs must be sorted by source. Classes are numbered by first node.
    After the first round only the classes holding a predecessor of a node that changed
    class are examined again (no other node's arcs lead to a new class): on HLG-sized
    graphs the later rounds see a small part of the nodes (1/10 of LibriSpeech's HLG: 7.8 s
    -> 3.6 s)."""
    cls = _group_rows(node_columns)
    degree = np.bincount(arc_src, minlength=num_nodes)
    arc_start = np.cumsum(degree) - degree
    count = int(cls.max(initial=-1)) + 1
    members = None  # the nodes of the classes examined; None: all (views of the arrays, no copies)
    while True:
        nodes = slice(None) if members is None else members
        node_cls, length = cls[nodes], degree[nodes]
        if members is None:
            arcs, start = slice(None), arc_start
        else:
            arcs, start = expand_ranges(arc_start[members], length)[0], np.cumsum(length) - length
        columns = [*(column[arcs] for column in arc_columns), cls[arc_dst[arcs]]]
        for seed in itertools.count(1):
            signature = _row_hash([node_cls, length, _segment_hash(_row_hash(columns, seed), start, length)], seed)
            _, first, group = np.unique(signature, return_index=True, return_inverse=True)
            group = group.reshape(-1)
            rep = first[group]
            if np.array_equal(node_cls[rep], node_cls) and _segments_equal(
                columns, start, length, columns, start[rep], length[rep]
            ).all():
                break
        # An examined class keeps its id for the group of its first member; its other groups get new ids.
        owner = node_cls[first]
        order = np.lexsort((first, owner))
        keeps = np.ones(first.size, dtype=bool)
        keeps[order[1:]] = owner[order[1:]] != owner[order[:-1]]
        split = np.flatnonzero(~keeps[group])
        added = np.flatnonzero(~keeps)
        new_id = owner.copy()
        new_id[added] = count + np.arange(added.size)
        count += added.size
        changed = split if members is None else members[split]
        if not changed.size:
            return unique_first(cls)[1]
        cls[changed] = new_id[group[split]]
        moved = np.zeros(num_nodes, dtype=bool)
        moved[changed] = True
        examined = np.zeros(count, dtype=bool)
        examined[cls[arc_src[moved[arc_dst]]]] = True  # the classes of the changed nodes' predecessors
        members = np.flatnonzero(examined[cls])
        if 4 * members.size > num_nodes:  # examine all then: views, not copies (memory)
            members = None


class _SubsetTable:
    """Canonical subsets (sorted states with quantised residuals) mapped to consecutive ids.

    Found by a 64-bit hash of the subset; every match is verified element by element,
    and a hash collision moves the newcomer to the next key (linear probing).
    """

    def __init__(self):
        self._keys = KeyTable()
        self._state, self._q, self._start, self._length = _Buffer(), _Buffer(), _Buffer(), _Buffer()

    @property
    def size(self) -> int:
        return self._keys.size

    def find_or_add(self, state, q, seg_start, seg_length) -> tuple[np.ndarray, np.ndarray]:
        """Id of each segment `state/q[seg_start : seg_start + seg_length]`, adding unseen
        subsets; also a mask of the segments whose subset was added (one per new id)."""
        columns = [state, q]
        key = _segment_hash(_row_hash(columns, 0), seg_start, seg_length).view(np.int64).copy()
        ids = np.full(seg_start.size, -1, dtype=np.int64)
        is_new = np.zeros(seg_start.size, dtype=bool)
        pending = np.arange(seg_start.size)
        while pending.size:
            _, first, inverse = np.unique(key[pending], return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            rep = pending[first]
            rep_of = rep[inverse]
            resolved = _segments_equal(
                columns, seg_start[pending], seg_length[pending], columns, seg_start[rep_of], seg_length[rep_of]
            )
            found = self._keys.lookup(key[rep])
            known = np.flatnonzero(found >= 0)
            stored = [self._state.data, self._q.data]
            match = np.ones(rep.size, dtype=bool)
            match[known] = _segments_equal(
                columns,
                seg_start[rep[known]],
                seg_length[rep[known]],
                stored,
                self._start.data[found[known]],
                self._length.data[found[known]],
            )
            unseen = np.flatnonzero(found < 0)
            if unseen.size:  # (KeyTable.lookup fails once an empty chunk is inserted)
                unseen = unseen[np.argsort(rep[unseen])]  # ids in segment order
                found[unseen] = self._keys.insert(key[rep[unseen]])
                is_new[rep[unseen]] = True
                length = seg_length[rep[unseen]]
                flat, _ = expand_ranges(seg_start[rep[unseen]], length)
                self._start.extend(self._state.size + np.cumsum(length) - length)
                self._length.extend(length)
                self._state.extend(state[flat])
                self._q.extend(q[flat])
            resolved &= match[inverse]
            ids[pending[resolved]] = found[inverse[resolved]]
            pending = pending[~resolved]
            key[pending] += 1
        return ids, is_new


class _Buffer:
    """A growing int64 array with amortised O(1) appends."""

    def __init__(self):
        self._data = np.empty(256, dtype=np.int64)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.size + values.size
        if end > self._data.size:
            grown = np.empty(max(end, 2 * self._data.size), dtype=np.int64)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = values
        self.size = end

    @property
    def data(self) -> np.ndarray:
        return self._data[: self.size]


_K1 = np.uint64(0xFF51AFD7ED558CCD)
_K2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)


def _mix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> _S33)) * _K1
    x = (x ^ (x >> _S33)) * _K2
    return x ^ (x >> _S33)


def _row_hash(columns, seed: int) -> np.ndarray:
    """A uint64 hash of each row of equally long int64 columns."""
    h = _mix(np.full(columns[0].size, seed, dtype=np.uint64) + _GOLDEN)
    for column in columns:
        h = _mix(h * _GOLDEN + np.ascontiguousarray(column, dtype=np.int64).view(np.uint64))
    return h


def _segment_hash(row_hash: np.ndarray, seg_start: np.ndarray, seg_length: np.ndarray) -> np.ndarray:
    """Order-independent uint64 hash of each segment of rows (wrapping sum, then mixed with the length)."""
    total = np.zeros(row_hash.size + 1, dtype=np.uint64)
    np.cumsum(row_hash, out=total[1:])
    return _mix(total[seg_start + seg_length] - total[seg_start] + seg_length.astype(np.uint64) * _GOLDEN)


def _segments_equal(columns_a, start_a, length_a, columns_b, start_b, length_b) -> np.ndarray:
    """For each pair of row segments, whether they have equal length and equal rows."""
    equal = length_a == length_b
    pair = np.flatnonzero(equal)
    flat_a, owner = expand_ranges(start_a[pair], length_a[pair])
    flat_b, _ = expand_ranges(start_b[pair], length_a[pair])
    for column_a, column_b in zip(columns_a, columns_b):
        equal[pair[owner[column_a[flat_a] != column_b[flat_b]]]] = False
    return equal


def _group_rows(columns) -> np.ndarray:
    """Dense ids of equal rows of int64 columns."""
    if not columns[0].size:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort(columns[::-1])
    starts = _run_starts(*(np.asarray(c)[order] for c in columns))
    ids = np.empty(order.size, dtype=np.int64)
    ids[order] = np.cumsum(starts) - 1
    return ids


def _run_starts(*columns) -> np.ndarray:
    """Mask of the rows of sorted columns that differ from the previous row."""
    start = np.ones(columns[0].size, dtype=bool)
    if columns[0].size:
        start[1:] = np.any([c[1:] != c[:-1] for c in columns], axis=0)
    return start


def _quantise(values: torch.Tensor, delta: float) -> np.ndarray:
    """Scores rounded to multiples of `delta`, as int64 on the host (-inf maps to the minimum)."""
    scaled = np.rint(values.cpu().numpy() / delta)
    return np.clip(np.nan_to_num(scaled, neginf=-(2.0**62), posinf=2.0**62), -(2.0**62), 2.0**62).astype(np.int64)


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays).astype(np.int64) if arrays else np.empty(0, dtype=np.int64)


def _cat_weights(tensors: list[torch.Tensor], device) -> torch.Tensor:
    return torch.cat(tensors) if tensors else torch.empty(0, dtype=_WORK, device=device)
