"""Comparing graphs: identical (`equal`), identical up to node numbering (`isomorphic`),
or accepting the same weighted relation as far as random paths can tell (`rand_equivalent`)."""

from __future__ import annotations

import numpy as np
import torch

from ._semiring import LOG, check_semiring
from .graph import EPSILON, Graph


def _arc_table(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Arcs as an int64 [num_arcs, 4] array (src, dst, ilabel, olabel) and float64 weights,
    sorted by (src, dst, ilabel, olabel, weight)."""
    s = graph.numpy()
    keys = np.stack([s.src, s.dst, s.ilabel, s.olabel], axis=1).astype(np.int64)
    weight = graph.weight.detach().cpu().double().numpy()
    order = np.lexsort((weight, *keys.T[::-1]))
    return keys[order], weight[order]


def _close(w1: np.ndarray, w2: np.ndarray, atol: float) -> bool:
    """Element-wise |w1 - w2| <= atol, with equal infinities equal."""
    return bool(np.allclose(w1, w2, rtol=0.0, atol=atol))


def equal(g1: Graph, g2: Graph, atol: float = 1e-6) -> bool:
    """Same node count, start and accept sets, and multiset of arcs (src, dst, ilabel,
    olabel) with weights within `atol`; arc order does not matter."""
    if g1.num_nodes != g2.num_nodes or g1.num_arcs != g2.num_arcs:
        return False
    s1, s2 = g1.numpy(), g2.numpy()
    if not (np.array_equal(s1.start, s2.start) and np.array_equal(s1.accept, s2.accept)):
        return False
    (k1, w1), (k2, w2) = _arc_table(g1), _arc_table(g2)
    return bool(np.array_equal(k1, k2)) and _close(w1, w2, atol)


def _invariants(graph: Graph) -> tuple:
    """Numbering-independent summaries: counts, sorted label pairs, sorted weights, degrees."""
    s = graph.numpy()
    labels = np.stack([s.ilabel, s.olabel], axis=1)
    labels = labels[np.lexsort(labels.T[::-1])]
    degrees = np.stack([np.bincount(s.src, minlength=s.num_nodes), np.bincount(s.dst, minlength=s.num_nodes)], axis=1)
    degrees = degrees[np.lexsort(degrees.T[::-1])]
    counts = (s.num_nodes, s.src.size, s.start.size, s.accept.size)
    return counts, labels, degrees, np.sort(graph.weight.detach().cpu().double().numpy())


def isomorphic(g1: Graph, g2: Graph, atol: float = 1e-6) -> bool:
    """Equal up to renumbering nodes: a bijection that keeps start and accept nodes and maps
    the parallel arcs between each node pair onto ones with the same labels and weights
    within `atol`. Cheap invariants are checked first; the search uses networkx's VF2."""
    try:
        import networkx as nx
        from networkx.algorithms.isomorphism import MultiDiGraphMatcher
    except ImportError as error:
        raise ImportError("graphs.isomorphic needs networkx: pip install networkx") from error

    (c1, l1, d1, w1), (c2, l2, d2, w2) = _invariants(g1), _invariants(g2)
    if c1 != c2 or not (np.array_equal(l1, l2) and np.array_equal(d1, d2) and _close(w1, w2, atol)):
        return False

    def to_networkx(graph: Graph) -> "nx.MultiDiGraph":
        s = graph.numpy()
        flags = np.zeros((s.num_nodes, 2), dtype=bool)
        flags[s.start, 0] = True
        flags[s.accept, 1] = True
        weight = graph.weight.detach().cpu().double().numpy()
        g = nx.MultiDiGraph()
        g.add_nodes_from((node, {"flags": tuple(f)}) for node, f in enumerate(flags.tolist()))
        arcs = zip(s.ilabel.tolist(), s.olabel.tolist(), weight.tolist())
        g.add_edges_from((u, v, {"arc": arc}) for u, v, arc in zip(s.src.tolist(), s.dst.tolist(), arcs))
        return g

    def edge_match(parallel1: dict, parallel2: dict) -> bool:
        a1 = sorted(attrs["arc"] for attrs in parallel1.values())
        a2 = sorted(attrs["arc"] for attrs in parallel2.values())
        return (
            len(a1) == len(a2)
            and all(x[:2] == y[:2] for x, y in zip(a1, a2))
            and _close(np.array([x[2] for x in a1]), np.array([y[2] for y in a2]), atol)
        )

    matcher = MultiDiGraphMatcher(
        to_networkx(g1),
        to_networkx(g2),
        node_match=lambda n1, n2: n1["flags"] == n2["flags"],
        edge_match=edge_match,
    )
    return matcher.is_isomorphic()


def _uniform_walk(graph: Graph) -> Graph:
    """The trimmed graph reweighted so a sampled path picks uniformly among a node's arcs
    (and stopping, at accept nodes): rare arcs get drawn as often as likely ones."""
    from .structure import connect

    trimmed = connect(graph.detach())
    s = trimmed.numpy()
    options = np.bincount(s.src, minlength=s.num_nodes)
    options[s.accept] += 1
    walk = trimmed.clone()
    walk.weight = torch.as_tensor(-np.log(options[s.src]), dtype=trimmed.dtype, device=trimmed.device)
    return walk


def rand_equivalent(
    g1: Graph, g2: Graph, num_samples: int = 50, atol: float = 1e-4, semiring: str = "log",
    generator: torch.Generator | None = None,
) -> bool:
    """Randomized equivalence test (like gtn's randEquivalent): draw paths from each
    graph by uniform random walks and check that their (input, output) label sequences
    get the same score in both (log: summed over paths, tropical: best path), within
    `atol`. Graphs with no paths are equivalent."""
    from .builders import sequence_graph
    from .compose import compose
    from .paths import sample
    from .scores import forward_score, viterbi_score

    check_semiring(semiring)
    score = forward_score if semiring == LOG else viterbi_score
    totals = torch.stack([forward_score(g1.detach()), forward_score(g2.detach())])
    if bool(torch.isinf(totals).all()):
        return True
    if bool(torch.isinf(totals).any()):
        return False
    drawn = [p for g in (g1, g2) for p in sample(_uniform_walk(g), num_samples, generator=generator)]
    inputs = [p.numpy().ilabel[p.numpy().ilabel != EPSILON] for p in drawn]
    outputs = [p.numpy().olabel[p.numpy().olabel != EPSILON] for p in drawn]
    device, dtype = g1.device, torch.promote_types(g1.dtype, g2.dtype)
    left = sequence_graph(inputs, device=device, dtype=dtype)
    right = sequence_graph(outputs, device=device, dtype=dtype)
    scores = [score(compose(compose(left, g.detach()), right)) for g in (g1, g2)]
    both_inf = torch.isinf(scores[0]) & torch.isinf(scores[1]) & (scores[0] == scores[1])
    close = (scores[0] - scores[1]).abs() <= atol
    return bool((both_inf | close).all())
