"""graphs.compare: `equal` (same numbering) and `isomorphic` (up to renumbering)."""

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import EPSILON, Graph
from graphs.compare import equal, isomorphic

FINITE_WEIGHTS = st.floats(-8.0, 8.0, allow_nan=False, width=64)


@st.composite
def random_graphs(
    draw,
    max_nodes=6,
    max_arcs=12,
    *,
    acyclic=False,
    weights=FINITE_WEIGHTS,
    min_starts=0,
    max_starts=3,
    max_label=3,
    dtypes=(torch.float32, torch.float64),
):
    """Random graphs with epsilons, parallel arcs, self-loops (unless `acyclic`: then every
    arc goes to a higher node), any number of start/accept nodes, float32 or float64."""
    n = draw(st.integers(max(1, min_starts), max_nodes))
    num_arcs = draw(st.integers(0, max_arcs if n > 1 or not acyclic else 0))
    nodes = st.integers(0, n - 1)
    src, dst = [], []
    for _ in range(num_arcs):
        if acyclic:
            a = draw(st.integers(0, n - 2))
            b = draw(st.integers(a + 1, n - 1))
        else:
            a, b = draw(nodes), draw(nodes)
        src.append(a)
        dst.append(b)
    labels = st.integers(EPSILON, max_label)
    ilabel = [draw(labels) for _ in range(num_arcs)]
    olabel = ilabel if draw(st.booleans()) else [draw(labels) for _ in range(num_arcs)]
    weight = torch.tensor([draw(weights) for _ in range(num_arcs)], dtype=torch.float64)
    start = sorted(draw(st.sets(nodes, min_size=min_starts, max_size=max_starts)))
    accept = sorted(draw(st.sets(nodes, max_size=3)))
    dtype = draw(st.sampled_from(dtypes))
    return Graph.from_arrays(src, dst, ilabel, olabel, weight.to(dtype), start, accept, n)


def renumbered(graph: Graph, perm: np.ndarray, arc_order: np.ndarray) -> Graph:
    """The graph with node k renamed perm[k] and its arcs listed in `arc_order`."""
    p, order = torch.as_tensor(perm), torch.as_tensor(arc_order, dtype=torch.long)
    return Graph.from_arrays(
        p[graph.src][order],
        p[graph.dst][order],
        graph.ilabel[order],
        graph.olabel[order],
        graph.weight[order],
        p[graph.start],
        p[graph.accept],
        graph.num_nodes,
    )


def replaced(graph: Graph, **arrays) -> Graph:
    """The graph with some of its arc arrays (src, dst, ilabel, olabel, weight) replaced."""
    fields = {name: getattr(graph, name) for name in ("src", "dst", "ilabel", "olabel", "weight")} | arrays
    return Graph.from_arrays(**fields, start=graph.start, accept=graph.accept, num_nodes=graph.num_nodes)


def with_weight(graph: Graph, arc: int, delta: float) -> Graph:
    weight = graph.weight.clone()
    weight[arc] += delta
    return replaced(graph, weight=weight)


def path_graph(labels, weights=None) -> Graph:
    """A chain 0 -> 1 -> ... with the given labels, start 0, accept the last node."""
    n = len(labels) + 1
    return Graph.from_arrays(range(n - 1), range(1, n), labels, None, weights, [0], [n - 1], n)


@settings(max_examples=60, deadline=None)
@given(random_graphs(), st.randoms(use_true_random=False))
def test_equal_ignores_arc_order(graph, rnd):
    order = np.array(rnd.sample(range(graph.num_arcs), graph.num_arcs), dtype=np.int64)
    assert equal(graph, renumbered(graph, np.arange(graph.num_nodes), order), atol=0.0)


@settings(max_examples=40, deadline=None)
@given(random_graphs(dtypes=(torch.float64,)).filter(lambda g: g.num_arcs > 0), st.data())
def test_equal_respects_atol(graph, data):
    arc = data.draw(st.integers(0, graph.num_arcs - 1))
    assert equal(graph, with_weight(graph, arc, 1e-8), atol=1e-6)
    assert not equal(graph, with_weight(graph, arc, 1e-3), atol=1e-6)
    assert equal(graph, with_weight(graph, arc, 1e-3), atol=1e-2)


def test_equal_checks_nodes_start_accept_and_labels():
    g = path_graph([0, 1], [0.5, -1.0])
    assert equal(g, path_graph([0, 1], [0.5, -1.0]))
    assert not equal(g, path_graph([0, 2], [0.5, -1.0]))
    moved_accept = Graph.from_arrays(g.src, g.dst, g.ilabel, None, g.weight, [0], [1], 3)
    assert not equal(g, moved_accept)
    extra_start = Graph.from_arrays(g.src, g.dst, g.ilabel, None, g.weight, [0, 1], [2], 3)
    assert not equal(g, extra_start)
    extra_node = Graph.from_arrays(g.src, g.dst, g.ilabel, None, g.weight, [0], [2], 4)
    assert not equal(g, extra_node)


def test_equal_infinite_weights():
    inf = float("-inf")
    assert equal(path_graph([0, 1], [inf, 0.0]), path_graph([0, 1], [inf, 0.0]))
    assert not equal(path_graph([0, 1], [inf, 0.0]), path_graph([0, 1], [0.0, 0.0]))


@settings(max_examples=60, deadline=None)
@given(random_graphs(), st.randoms(use_true_random=False))
def test_isomorphic_after_renumbering(graph, rnd):
    perm = np.array(rnd.sample(range(graph.num_nodes), graph.num_nodes), dtype=np.int64)
    order = np.array(rnd.sample(range(graph.num_arcs), graph.num_arcs), dtype=np.int64)
    assert isomorphic(graph, renumbered(graph, perm, order), atol=0.0)


@settings(max_examples=40, deadline=None)
@given(random_graphs().filter(lambda g: g.num_arcs > 0), st.data())
def test_not_isomorphic_after_changing_a_label(graph, data):
    arc = data.draw(st.integers(0, graph.num_arcs - 1))
    ilabel = graph.ilabel.clone()
    ilabel[arc] = 99
    assert not isomorphic(graph, replaced(graph, ilabel=ilabel))


def test_not_isomorphic_when_only_the_structure_differs():
    # Same label multiset, degrees and weights: only the search can tell these apart.
    assert not isomorphic(path_graph([0, 1]), path_graph([1, 0]))
    assert isomorphic(path_graph([0, 1]), path_graph([0, 1]))


def test_isomorphic_matches_parallel_arcs_as_multisets():
    def two_parallel(weights, labels=(0, 0)):
        return Graph.from_arrays([0, 0], [1, 1], list(labels), None, weights, [0], [1], 2)

    assert isomorphic(two_parallel([1.0, 2.0]), two_parallel([2.0, 1.0]))
    assert isomorphic(two_parallel([1.0, 2.0]), two_parallel([2.0, 1.0 + 1e-9]), atol=1e-6)
    assert not isomorphic(two_parallel([1.0, 2.0], (0, 1)), two_parallel([2.0, 1.0], (0, 1)))


def test_isomorphic_needs_start_and_accept_to_match():
    g = path_graph([0, 0])
    loop = Graph.from_arrays([0, 1], [1, 0], [0, 0], None, None, [0], [1], 2)
    assert not isomorphic(loop, Graph.from_arrays([0, 1], [1, 0], [0, 0], None, None, [0], [0], 2))
    assert isomorphic(g, renumbered(g, np.array([2, 0, 1]), np.array([1, 0])))


def test_isomorphic_without_networkx(monkeypatch):
    monkeypatch.setitem(sys.modules, "networkx", None)
    with pytest.raises(ImportError, match="pip install networkx"):
        isomorphic(path_graph([0]), path_graph([0]))
