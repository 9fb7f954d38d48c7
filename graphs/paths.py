"""Path extraction: the n best paths, random paths drawn by weight, and pruning around the best path.

Paths (and pruned graphs) keep the input's weights of the arcs they use, so
gradients flow from a path's score to those arcs; which paths or arcs are chosen
is decided on detached weights and is not differentiated.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ._arrays import CSR, topological_levels
from ._batch import Batch, per_batch, select
from ._schedule import LOG, TROPICAL, schedule_for
from .graph import Graph, as_list
from .scores import paths_to_graphs


def _grouped(batch: Batch, paths: list[np.ndarray], has_path: np.ndarray, owner: np.ndarray):
    """Path graphs grouped per input graph (a list of lists)."""
    graphs = paths_to_graphs(batch, paths, has_path) if paths else []
    grouped = [[] for _ in range(batch.size)]
    for graph, b in zip(graphs, owner.tolist()):
        grouped[b].append(graph)
    return grouped


def nbest(graphs: Graph | Sequence[Graph], n: int) -> list[Graph] | list[list[Graph]]:
    """The n highest-scoring accepting paths (distinct arc sequences, best first) of an
    acyclic graph, as linear graphs; fewer if the graph has fewer paths. A list of
    graphs gives a list of such lists. Graphs with cycles raise ValueError."""
    if n < 1:
        raise ValueError(f"nbest: n must be at least 1, got {n}")
    items, single = as_list(graphs)
    batch = Batch(items)
    level = topological_levels(batch.num_nodes, batch.src, batch.dst)
    if (level < 0).any():
        raise ValueError("nbest: the graph has a cycle; n-best extraction needs an acyclic graph")
    weight = batch.weight.detach().cpu().double().numpy()
    score = np.full((batch.num_nodes, n), -np.inf)
    back_arc = np.full((batch.num_nodes, n), -1, dtype=np.int64)
    back_rank = np.zeros((batch.num_nodes, n), dtype=np.int64)
    score[batch.start, 0] = 0.0
    is_start = np.zeros(batch.num_nodes, dtype=bool)
    is_start[batch.start] = True
    arc_level = level[batch.dst]
    order = np.argsort(arc_level, kind="stable")
    bounds = np.searchsorted(arc_level[order], np.arange(int(level.max(initial=0)) + 2))
    for lv in range(1, bounds.size - 1):
        arcs = order[bounds[lv]:bounds[lv + 1]]
        if arcs.size == 0:
            continue
        # Candidates: every ranked entry of every arc's source, plus the start entry of start nodes.
        cand_score = (score[batch.src[arcs]] + weight[arcs, None]).reshape(-1)
        cand_node = np.repeat(batch.dst[arcs], n)
        cand_arc = np.repeat(arcs, n)
        cand_rank = np.tile(np.arange(n), arcs.size)
        nodes = np.unique(batch.dst[arcs])
        own = is_start[nodes]
        cand_score = np.concatenate([cand_score, np.zeros(int(own.sum()))])
        cand_node = np.concatenate([cand_node, nodes[own]])
        cand_arc = np.concatenate([cand_arc, np.full(int(own.sum()), -1)])
        cand_rank = np.concatenate([cand_rank, np.zeros(int(own.sum()), dtype=np.int64)])
        keep = np.isfinite(cand_score)
        top, rank = _top_n(cand_node[keep], cand_score[keep], n)
        picked_node = cand_node[keep][top]
        score[nodes] = -np.inf
        score[picked_node, rank] = cand_score[keep][top]
        back_arc[picked_node, rank] = cand_arc[keep][top]
        back_rank[picked_node, rank] = cand_rank[keep][top]
    # The n best over each graph's accept nodes.
    acc_score = score[batch.accept].reshape(-1)
    acc_node = np.repeat(batch.accept, n)
    acc_rank = np.tile(np.arange(n), batch.accept.size)
    acc_graph = np.repeat(batch.accept_graph, n)
    keep = np.isfinite(acc_score)
    top, _ = _top_n(acc_graph[keep], acc_score[keep], n)
    node, rank, owner = acc_node[keep][top], acc_rank[keep][top], acc_graph[keep][top]
    paths = _trace(batch, node, rank, back_arc, back_rank)
    grouped = _grouped(batch, paths, np.ones(len(paths), dtype=bool), owner)
    return grouped[0] if single else grouped


def _top_n(groups: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the n best scores within each group, and their rank in it (0 = best)."""
    order = np.lexsort((-scores, groups))
    g = groups[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    start_at = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
    rank = np.arange(order.size) - start_at
    keep = rank < n
    return order[keep], rank[keep]


def _trace(batch: Batch, node, rank, back_arc, back_rank) -> list[np.ndarray]:
    """Follow back-pointers from (node, rank) entries to their start; arcs in path order."""
    node, rank = node.copy(), rank.copy()
    steps = []
    live = back_arc[node, rank] >= 0
    while live.any():
        arc = np.where(live, back_arc[node, rank], -1)
        steps.append(arc)
        prev_rank = back_rank[node, rank]
        node = np.where(live, batch.src[np.maximum(arc, 0)], node)
        rank = np.where(live, prev_rank, rank)
        live &= back_arc[node, rank] >= 0
    if not steps:
        return [np.empty(0, dtype=np.int64) for _ in range(node.size)]
    table = np.stack(steps[::-1], axis=1)
    return [row[row >= 0] for row in table]


def sample(
    graphs: Graph | Sequence[Graph], num_samples: int = 1, generator: torch.Generator | None = None
) -> list[Graph] | list[list[Graph]]:
    """Draw accepting paths with probability exp(path weight - forward_score), as linear
    graphs: `num_samples` per graph (a list of graphs gives a list of lists).
    Cyclic graphs are fine as long as their forward score converges."""
    items, single = as_list(graphs)
    batch = Batch(items)
    schedule = schedule_for(batch)
    with torch.no_grad():
        beta_rank = schedule.backward(batch.weight.detach(), LOG)
    beta = beta_rank.cpu().double().numpy()[schedule.rank]
    weight = batch.weight.detach().cpu().double().numpy()
    owner = np.repeat(np.arange(batch.size), num_samples)
    # Choose a start node in proportion to exp(beta[start]).
    starts = CSR(batch.start_graph, batch.size)
    options, chooser = starts.gather(owner)
    start = batch.start[options]
    pick = _gumbel_argmax(chooser, beta[start], owner.size, generator)
    has_path = pick >= 0
    node = np.where(has_path, start[np.maximum(pick, 0)], -1)
    is_accept = np.zeros(batch.num_nodes, dtype=bool)
    is_accept[batch.accept] = True
    out = CSR(batch.src, batch.num_nodes)
    steps = []
    live = has_path.copy()
    while live.any():
        walkers = np.flatnonzero(live)
        arcs, who = out.gather(node[walkers])
        values = weight[arcs] + beta[batch.dst[arcs]]
        stoppers = walkers[is_accept[node[walkers]]]
        # Stopping at an accept node is one more option with weight 0.
        index = np.concatenate([who, np.searchsorted(walkers, stoppers)])
        choice_arc = np.concatenate([arcs, np.full(stoppers.size, -1)])
        pick = _gumbel_argmax(index, np.concatenate([values, np.zeros(stoppers.size)]), walkers.size, generator)
        chosen = choice_arc[pick]
        step = np.full(owner.size, -1, dtype=np.int64)
        step[walkers] = chosen
        steps.append(step)
        moving = chosen >= 0
        node[walkers[moving]] = batch.dst[chosen[moving]]
        live[walkers[~moving]] = False
    table = np.stack(steps, axis=1) if steps else np.empty((owner.size, 0), dtype=np.int64)
    paths = [row[row >= 0] for row in table]
    grouped = _grouped(batch, paths, has_path, owner)
    return grouped[0] if single else grouped


def _gumbel_argmax(groups: np.ndarray, logits: np.ndarray, num_groups: int, generator) -> np.ndarray:
    """Per group, the index of an option drawn with probability softmax(logits); -1 for a group
    with no finite option."""
    uniform = torch.rand(logits.size, dtype=torch.float64, generator=generator).numpy()
    noisy = logits - np.log(-np.log(np.clip(uniform, 1e-300, 1.0)))
    noisy[~np.isfinite(logits)] = -np.inf
    best = np.full(num_groups, -np.inf)
    np.maximum.at(best, groups, noisy)
    winner = np.full(num_groups, -1, dtype=np.int64)
    hit = np.flatnonzero((noisy == best[groups]) & np.isfinite(noisy))
    winner[groups[hit]] = hit
    return winner


def prune(graphs: Graph | Sequence[Graph], threshold: float) -> Graph | list[Graph]:
    """Keep the arcs and nodes that lie on an accepting path whose weight is within
    `threshold` of the best path's (OpenFst's Prune with a weight threshold)."""
    if threshold < 0:
        raise ValueError(f"prune: threshold must be >= 0, got {threshold}")

    def run(batch: Batch) -> list[Graph]:
        schedule = schedule_for(batch)
        with torch.no_grad():
            weight = batch.weight.detach()
            alpha = schedule.forward(weight, TROPICAL)
            beta = schedule.backward(weight, TROPICAL)
            best = schedule.total(alpha, TROPICAL)
        a = alpha.cpu().double().numpy()
        b = beta.cpu().double().numpy()
        z = best.cpu().double().numpy()
        through_node = (a + b)[schedule.rank]
        through_arc = a[schedule.src_rank] + weight.cpu().double().numpy() + b[schedule.dst_rank]
        keep_node = through_node >= z[batch.node_graph] - threshold
        keep_arc = through_arc >= z[batch.arc_graph] - threshold
        keep_node &= np.isfinite(through_node)
        keep_arc &= keep_node[batch.src] & keep_node[batch.dst] & np.isfinite(through_arc)
        return select(batch, keep_node, keep_arc)

    return per_batch(run, graphs)
