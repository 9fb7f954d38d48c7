"""Differentiable epsilon removal in the log (or tropical) semiring.

Every real arc p -a-> q is followed by the epsilon closure of q: it becomes arcs
p -a-> r weighted w + D(q, r), where D is the log-sum of all epsilon paths from q
to r (cycles included, summed to convergence). Leading epsilon paths from a
start node are folded into one new start node. Weights are built from input
weights with differentiable torch ops, so gradients reach every input arc
(gtn's `remove` drops the weights of removed paths and has no gradient).

Because graphs have no final weights, an empty sequence accepted with a
weight other than 0 keeps a single epsilon arc, from the new start node to a
new accept node, carrying that weight.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._arrays import CSR, topological_levels
from ._batch import Batch, assemble, per_batch
from ._semiring import LOG, TROPICAL, check_semiring, segment_reduce
from .graph import EPSILON, Graph
from .structure import connect

MAX_CLOSURE_ROUNDS = 10_000


class _Closure:
    """Epsilon-closure pairs (p, q, D(p, q)) for every node p with an outgoing epsilon arc,
    including p itself (the empty path, plus any epsilon cycles through p)."""

    def __init__(self, batch: Batch, eps: np.ndarray, weight: torch.Tensor, semiring: str):
        n = batch.num_nodes
        eps_src, eps_dst = batch.src[eps], batch.dst[eps]
        sources = np.unique(eps_src)
        cyclic = bool((topological_levels(n, eps_src, eps_dst) < 0).any())
        index = CSR(eps_src, n)
        eps_weight = weight.index_select(0, batch.tensor(eps))
        tiny = np.log(np.finfo(np.float64 if weight.dtype == torch.float64 else np.float32).eps)
        p, q = sources, sources
        layer = torch.zeros(sources.size, dtype=weight.dtype, device=weight.device)
        keys, values = [p * n + q], [layer]
        # Acyclic epsilon arcs run out of layers; cycles stop once a layer no longer matters
        # (log: negligible against the running sums; tropical: improves no best path).
        running = _Running(keys[0], layer, semiring) if cyclic else None
        rounds = n + 2 if semiring == TROPICAL or not cyclic else MAX_CLOSURE_ROUNDS
        for _ in range(rounds):
            arcs, owner = index.gather(q)
            if arcs.size == 0:
                break
            step_keys = p[owner] * n + eps_dst[arcs]
            uniq, inverse = np.unique(step_keys, return_inverse=True)
            step = layer.index_select(0, batch.tensor(owner)) + eps_weight.index_select(0, batch.tensor(arcs))
            layer = segment_reduce(step, batch.tensor(inverse.reshape(-1)), uniq.size, semiring)
            p, q = uniq // n, uniq % n
            keys.append(uniq)
            values.append(layer)
            if running is not None and running.add(uniq, layer) < (tiny if semiring == LOG else 0.0):
                break
        else:
            raise ValueError(
                "remove_epsilon: the sums over epsilon cycles did not converge: a cycle of epsilon "
                "arcs whose total weight is >= 0 makes them infinite" if semiring == LOG else
                "remove_epsilon: a cycle of epsilon arcs has positive total weight, so best paths are unbounded"
            )
        all_keys = np.concatenate(keys)
        uniq, inverse = np.unique(all_keys, return_inverse=True)
        self.p, self.q = uniq // n, uniq % n
        self.weight = segment_reduce(torch.cat(values), batch.tensor(inverse.reshape(-1)), uniq.size, semiring)
        self.has_closure = np.zeros(n, dtype=bool)
        self.has_closure[sources] = True
        self.by_source = CSR(self.p, n)


class _Running:
    """Detached per-pair totals of the closure, to tell when a new layer no longer matters."""

    def __init__(self, keys: np.ndarray, values: torch.Tensor, semiring: str):
        self.keys, self.totals = keys, values.detach().cpu().double().numpy().copy()
        self.combine = np.logaddexp if semiring == LOG else np.maximum

    def add(self, keys: np.ndarray, values: torch.Tensor) -> float:
        """Fold in a layer; return by how much (log ratio) the layer most exceeds the totals it
        found: below log(eps) it no longer changes a log sum, at or below 0 no best path."""
        values = values.detach().cpu().double().numpy()
        merged = np.union1d(self.keys, keys)
        totals = np.full(merged.size, -np.inf)
        totals[np.searchsorted(merged, self.keys)] = self.totals
        at = np.searchsorted(merged, keys)
        before = totals[at]
        totals[at] = self.combine(before, values)
        self.keys, self.totals = merged, totals
        reference = totals[at] if self.combine is np.logaddexp else before
        with np.errstate(invalid="ignore"):
            gain = values - reference
        return float(np.nanmax(np.where(np.isneginf(values), -np.inf, gain), initial=-np.inf))


def _remove_epsilon_batch(batch: Batch, semiring: str) -> list[Graph]:
    is_eps = (batch.ilabel == EPSILON) & (batch.olabel == EPSILON)
    weight = batch.weight
    if not is_eps.any():
        return assemble(batch.size, batch.node_graph, batch.src, batch.dst, batch.ilabel, batch.olabel,
                        weight, batch.start, batch.accept, batch.device, batch.dtype)
    closure = _Closure(batch, np.flatnonzero(is_eps), weight, semiring)
    real = np.flatnonzero(~is_eps)
    arcs = _arcs_then_closure(batch, real, weight, closure)
    src, dst, ilabel, olabel, arc_weight = arcs
    node_graph, start, accept = batch.node_graph, batch.start, batch.accept

    folded = np.unique(batch.start_graph[closure.has_closure[batch.start]])  # graphs needing a new start
    if folded.size:
        new_start = batch.num_nodes + np.arange(folded.size)
        start_of = np.full(batch.size, -1, dtype=np.int64)
        start_of[folded] = new_start
        lead_graph, lead_node, lead_weight, lead_trivial = _leading_closures(batch, closure, folded, weight)
        # Copy the (closure-extended) arcs leaving each node reachable by leading epsilons.
        out = CSR(src, batch.num_nodes)
        copies, owner = out.gather(lead_node)
        src = np.concatenate([src, start_of[lead_graph[owner]]])
        dst = np.concatenate([dst, dst[copies]])
        ilabel = np.concatenate([ilabel, ilabel[copies]])
        olabel = np.concatenate([olabel, olabel[copies]])
        arc_weight = torch.cat([arc_weight, lead_weight.index_select(0, batch.tensor(owner)) + arc_weight.index_select(0, batch.tensor(copies))])
        node_graph = np.concatenate([node_graph, folded])
        start = np.concatenate([start[start_of[batch.start_graph] < 0], new_start])
        # The empty sequence: accepted with weight 0 through a lone start node, or via an epsilon arc.
        is_accept = np.zeros(batch.num_nodes, dtype=bool)
        is_accept[batch.accept] = True
        hits = np.flatnonzero(is_accept[lead_node])
        per_graph = np.bincount(lead_graph[hits], minlength=batch.size)
        trivial = np.zeros(batch.size, dtype=bool)
        trivial[lead_graph[hits]] = lead_trivial[hits]
        trivial &= per_graph == 1
        accept = np.concatenate([accept, start_of[trivial]])
        weighted = np.flatnonzero((per_graph > 0) & ~trivial & (start_of >= 0))
        if weighted.size:
            slot = np.full(batch.size, -1, dtype=np.int64)
            slot[weighted] = np.arange(weighted.size)
            keep = slot[lead_graph[hits]] >= 0
            empty_weight = segment_reduce(
                lead_weight.index_select(0, batch.tensor(hits[keep])),
                batch.tensor(slot[lead_graph[hits[keep]]]), weighted.size, semiring,
            )
            final = batch.num_nodes + folded.size + np.arange(weighted.size)
            node_graph = np.concatenate([node_graph, weighted])
            src = np.concatenate([src, start_of[weighted]])
            dst = np.concatenate([dst, final])
            ilabel = np.concatenate([ilabel, np.full(weighted.size, EPSILON)])
            olabel = np.concatenate([olabel, np.full(weighted.size, EPSILON)])
            arc_weight = torch.cat([arc_weight, empty_weight])
            accept = np.concatenate([accept, final])
    return assemble(batch.size, node_graph, src, dst, ilabel, olabel, arc_weight, start, accept, batch.device, batch.dtype)


def _arcs_then_closure(batch: Batch, real: np.ndarray, weight: torch.Tensor, closure: _Closure):
    """Each real arc p -> q extended by the epsilon closure of q."""
    plain = real[~closure.has_closure[batch.dst[real]]]
    extended = real[closure.has_closure[batch.dst[real]]]
    pairs, owner = closure.by_source.gather(batch.dst[extended])
    arcs = np.concatenate([plain, extended[owner]])
    dst = np.concatenate([batch.dst[plain], closure.q[pairs]])
    arc_weight = weight.index_select(0, batch.tensor(arcs))
    tail = torch.cat([torch.zeros(plain.size, dtype=weight.dtype, device=weight.device),
                      closure.weight.index_select(0, batch.tensor(pairs))])
    return batch.src[arcs], dst, batch.ilabel[arcs], batch.olabel[arcs], arc_weight + tail


def _leading_closures(batch: Batch, closure: _Closure, folded: np.ndarray, weight: torch.Tensor):
    """For the start nodes of the graphs in `folded`: (graph, reached node, D(start, node),
    whether the pair is the plain empty path of a start without epsilon arcs)."""
    in_folded = np.isin(batch.start_graph, folded)
    starts = batch.start[in_folded]
    graphs = batch.start_graph[in_folded]
    with_eps = closure.has_closure[starts]
    pairs, owner = closure.by_source.gather(starts[with_eps])
    lone = ~with_eps
    lead_graph = np.concatenate([graphs[with_eps][owner], graphs[lone]])
    lead_node = np.concatenate([closure.q[pairs], starts[lone]])
    lead_weight = torch.cat([closure.weight.index_select(0, batch.tensor(pairs)),
                             torch.zeros(int(lone.sum()), dtype=weight.dtype, device=weight.device)])
    trivial = np.concatenate([np.zeros(pairs.size, dtype=bool), np.ones(int(lone.sum()), dtype=bool)])
    return lead_graph, lead_node, lead_weight, trivial


def remove_epsilon(graphs: Graph | Sequence[Graph], semiring: str = LOG) -> Graph | list[Graph]:
    """Remove epsilon arcs (ilabel == olabel == EPSILON), keeping every sequence's weight in
    the given semiring ("log": summed over epsilon paths, "tropical": their best);
    differentiable. The result is trimmed (`connect`)."""
    check_semiring(semiring)
    return connect(per_batch(lambda batch: _remove_epsilon_batch(batch, semiring), graphs))
