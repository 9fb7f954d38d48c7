"""determinize and minimize: property tests on small random acceptors against
brute-force string scores and OpenFst (through pywrapfst), plus error messages."""

from __future__ import annotations

import importlib
import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs import EPSILON, Graph
from graphs.determinize import DELTA, determinize, minimize

from .oracle import from_openfst, fst, to_openfst_acceptor

NUM_LABELS = 3
MAX_LENGTH = 4
TOLERANCE = 1e-4
# Rounding to DELTA may merge subsets or nodes whose weights differ by less than DELTA (ours and
# OpenFst's) and rounds stored weights (OpenFst's), so scores may drift by about DELTA per label.
ROUNDED_TOLERANCE = (MAX_LENGTH + 1) * DELTA
determinize_module = importlib.import_module("graphs.determinize")  # the package exports a function of that name
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- helpers
@st.composite
def acceptors(draw, weighted: bool, acyclic: bool) -> Graph:
    """Random acceptor: up to 6 nodes, 12 arcs, 3 labels, 2 start nodes, weights in [-2, 0] (repeats likely)."""
    n = draw(st.integers(1, 6))
    weight = st.one_of(st.sampled_from([0.0, -0.5, -1.0]), st.floats(-2.0, 0.0)) if weighted else st.just(0.0)
    node = st.integers(0, n - 1)
    arcs = draw(st.lists(st.tuples(node, node, st.integers(0, NUM_LABELS - 1), weight), max_size=12))
    if acyclic:
        arcs = [(min(s, d), max(s, d), label, w) for s, d, label, w in arcs if s != d]
    starts = draw(st.lists(node, min_size=1, max_size=2, unique=True))
    accepts = draw(st.lists(node, min_size=1, max_size=3, unique=True))
    src, dst, label, w = zip(*arcs) if arcs else ((), (), (), ())
    return Graph.from_arrays(list(src), list(dst), list(label), weight=list(w), start=starts, accept=accepts,
                             num_nodes=n)


@st.composite
def deterministic_acceptors(draw, semiring: str, weighted: bool) -> Graph:
    """Random deterministic acceptor, possibly cyclic; log weights in [-3, -1.2] keep every
    node's outgoing probability mass below 1, so weight pushing converges."""
    n = draw(st.integers(1, 6))
    low, high = (-3.0, -1.2) if semiring == "log" else (-2.0, 0.0)
    weight = st.one_of(st.sampled_from([low, high]), st.floats(low, high)) if weighted else st.just(0.0)
    slots = n * NUM_LABELS  # one optional target per (node, label)
    targets = draw(st.lists(st.one_of(st.none(), st.integers(0, n - 1)), min_size=slots, max_size=slots))
    arcs = [(i // NUM_LABELS, d, i % NUM_LABELS, draw(weight)) for i, d in enumerate(targets) if d is not None]
    accepts = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))
    src, dst, label, w = zip(*arcs) if arcs else ((), (), (), ())
    return Graph.from_arrays(list(src), list(dst), list(label), weight=list(w), start=[0], accept=accepts, num_nodes=n)


def string_scores(graph: Graph, semiring: str, max_length: int = MAX_LENGTH) -> dict[tuple[int, ...], float]:
    """Score of every accepted string of up to `max_length` labels, by enumerating paths
    (epsilon arcs consume nothing; the graphs tested have no epsilon cycles)."""
    out = defaultdict(list)
    for s, d, label, _, w in graph.arcs():
        out[s].append((d, label, w))
    accept = set(graph.accept.tolist())
    found = defaultdict(list)
    stack = [(s, (), 0.0) for s in graph.start.tolist()]
    while stack:
        node, labels, score = stack.pop()
        if node in accept:
            found[labels].append(score)
        for d, label, w in out[node]:
            if label == EPSILON:
                stack.append((d, labels, score + w))
            elif len(labels) < max_length:
                stack.append((d, labels + (label,), score + w))
    return {labels: _combine(scores, semiring) for labels, scores in found.items() if max(scores) > -math.inf}


def _combine(scores: list[float], semiring: str) -> float:
    top = max(scores)
    if semiring == "tropical":
        return top
    return top + math.log(sum(math.exp(s - top) for s in scores))


def assert_same_scores(actual: Graph, expected: Graph, semiring: str, tolerance: float = TOLERANCE) -> None:
    got, want = string_scores(actual, semiring), string_scores(expected, semiring)
    assert got.keys() == want.keys()
    for labels, score in want.items():
        assert got[labels] == pytest.approx(score, abs=tolerance), labels


def assert_deterministic(graph: Graph) -> None:
    """One start node (none if empty), no two arcs with one label leaving a node, and
    epsilon arcs only as final-weight arcs into accept nodes without outgoing arcs."""
    assert graph.is_acceptor()
    assert graph.start.numel() == (1 if graph.num_nodes else 0)
    pairs = list(zip(graph.src.tolist(), graph.ilabel.tolist()))
    assert len(pairs) == len(set(pairs))
    sources = set(graph.src.tolist())
    accept = set(graph.accept.tolist())
    for _, d, label, _, _ in graph.arcs():
        if label == EPSILON:
            assert d in accept and d not in sources


def core_nodes(graph: Graph) -> int:
    """Nodes apart from the shared accept node that carries final weights (OpenFst has none)."""
    return graph.num_nodes - bool((graph.ilabel == EPSILON).any())


def openfst_determinize(graph: Graph, semiring: str) -> "fst.Fst":
    f = to_openfst_acceptor(graph, semiring)
    f = f.rmepsilon() if graph.start.numel() > 1 else f.connect()
    return fst.determinize(f, delta=DELTA)


def openfst_minimize(graph: Graph, semiring: str) -> "fst.Fst":
    return to_openfst_acceptor(graph, semiring).minimize(delta=DELTA)


# ---------------------------------------------------------------------------- determinize
DETERMINIZE_CASES = [
    # (semiring, weighted, acyclic): weighted cyclic graphs may be non-determinizable,
    # where OpenFst never returns, so OpenFst only sees the cases that always terminate.
    ("tropical", False, False),
    ("log", False, True),
    ("tropical", True, True),
    ("log", True, True),
]


@pytest.mark.parametrize("semiring, weighted, acyclic", DETERMINIZE_CASES)
@PROPERTY
@given(data=st.data())
def test_determinize_matches_openfst(semiring, weighted, acyclic, data):
    graph = data.draw(acceptors(weighted, acyclic))
    result = determinize(graph, semiring)
    assert_deterministic(result)
    assert_same_scores(result, graph, semiring)
    reference = openfst_determinize(graph, semiring)
    assert_same_scores(result, from_openfst(reference), semiring, ROUNDED_TOLERANCE)
    if graph.start.numel() == 1 or acyclic:
        assert core_nodes(result) == reference.num_states()
    else:  # our initial subset may recur; OpenFst's super-start subset never does
        assert reference.num_states() - 1 <= core_nodes(result) <= reference.num_states()


@pytest.mark.parametrize("semiring, weighted", [("log", False), ("log", True), ("tropical", True)])
@PROPERTY
@given(data=st.data())
def test_determinize_cyclic(semiring, weighted, data):
    graph = data.draw(acceptors(weighted, acyclic=False))
    try:
        result = determinize(graph, semiring, max_nodes=60)
    except ValueError as error:  # cycles failing the twins property
        assert "not determinizable" in str(error)
        return
    assert_deterministic(result)
    assert_same_scores(result, graph, semiring, ROUNDED_TOLERANCE)
    assert determinize(result, semiring).num_nodes == result.num_nodes


@PROPERTY
@given(graphs=st.lists(acceptors(weighted=True, acyclic=True), min_size=0, max_size=4))
def test_batch_matches_single(graphs):
    determinized = determinize(graphs)
    minimized = minimize(determinized)
    for op, inputs, results in ((determinize, graphs, determinized), (minimize, determinized, minimized)):
        assert isinstance(results, list) and len(results) == len(inputs)
        for graph, result in zip(inputs, results):
            single = op(graph)
            assert result.arcs() == single.arcs()
            assert torch.equal(result.start, single.start) and torch.equal(result.accept, single.accept)


def test_weak_hashes_change_nothing(monkeypatch):
    # Subsets and refinement signatures are found by 64-bit hashes and verified; with hashes of
    # 2 bits, collisions are everywhere and must be resolved (probing, or rehashing with a new seed).
    rng = np.random.default_rng(0)
    graphs = []
    for _ in range(40):
        n, m = rng.integers(2, 7), rng.integers(4, 13)
        graphs.append(Graph.from_arrays(rng.integers(0, n, m), rng.integers(0, n, m), rng.integers(0, NUM_LABELS, m),
                                        start=[0], accept=rng.choice(n, 2, replace=False), num_nodes=n))
    expected = [minimize(determinize(g, "tropical"), "tropical") for g in graphs]
    strong = determinize_module._row_hash
    monkeypatch.setattr(determinize_module, "_row_hash",
                        lambda columns, seed: strong(columns, seed) & np.uint64(3) if seed < 2 else strong(columns, seed))
    for graph, want in zip(graphs, expected):
        got = minimize(determinize(graph, "tropical"), "tropical")
        assert got.num_nodes == want.num_nodes
        assert_same_scores(got, graph, "tropical")


def test_determinize_worked_example():
    # "a" leads into the subset {2: -0.5, 3: 0}; only node 2 of it accepts, so the subset's
    # final weight -0.5 becomes an epsilon arc into the extra accept node 3.
    graph = Graph.from_arrays([0, 0, 2, 3], [2, 3, 1, 1], [0, 0, 1, 2], weight=[-1.0, -0.5, -0.25, 0.0],
                              start=[0], accept=[2, 1])
    result = determinize(graph, "tropical")
    assert result.start.tolist() == [0] and result.accept.tolist() == [2, 3]
    assert result.arcs() == [(0, 1, 0, 0, -0.5), (1, 2, 1, 1, -0.75), (1, 2, 2, 2, 0.0), (1, 3, EPSILON, EPSILON, -0.5)]
    assert_same_scores(result, graph, "tropical")


def test_determinize_keeps_dtype_detaches_and_handles_empty():
    weight = torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64, requires_grad=True)
    graph = Graph.from_arrays([0, 0, 1], [1, 1, 2], [0, 0, 1], weight=weight, start=[0], accept=[2])
    result = determinize(graph)
    assert result.dtype == torch.float64 and not result.weight.requires_grad
    assert result.num_nodes == 3
    assert result.weight.tolist()[0] == pytest.approx(math.log(math.exp(-1) + math.exp(-2)))
    empty = determinize(Graph.from_arrays([0], [1], [0], start=[], accept=[1]))
    assert empty.num_nodes == 0 and empty.num_arcs == 0


def test_arcs_scored_minus_infinity_are_dropped():
    graph = Graph.from_arrays([0, 0], [1, 1], [0, 0], weight=[-1.0, -math.inf], start=[0], accept=[1])
    for op in (determinize, minimize):
        assert op(graph).arcs() == [(0, 1, 0, 0, -1.0)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_determinize_and_minimize_on_cuda():
    graph = Graph.from_arrays([0, 0, 1, 2], [1, 2, 3, 3], [0, 0, 1, 1], weight=[-1.0, -2.0, -0.5, -0.25],
                              start=[0], accept=[3], device="cuda")
    result = minimize(determinize(graph))
    assert result.device.type == "cuda"
    assert_same_scores(result, graph, "log")


# ---------------------------------------------------------------------------- minimize
@pytest.mark.parametrize("semiring, weighted, acyclic", DETERMINIZE_CASES)
@PROPERTY
@given(data=st.data())
def test_minimize_determinized_matches_openfst(semiring, weighted, acyclic, data):
    graph = determinize(data.draw(acceptors(weighted, acyclic)), semiring)
    result = minimize(graph, semiring)
    assert_deterministic(result)
    assert_same_scores(result, graph, semiring, ROUNDED_TOLERANCE)
    reference = openfst_minimize(graph, semiring)
    assert_same_scores(result, from_openfst(reference), semiring, ROUNDED_TOLERANCE)
    assert core_nodes(result) == reference.num_states()
    assert minimize(result, semiring).num_nodes == result.num_nodes


@pytest.mark.parametrize("semiring, weighted", [("log", False), ("log", True), ("tropical", False), ("tropical", True)])
@PROPERTY
@given(data=st.data())
def test_minimize_random_deterministic(semiring, weighted, data):
    graph = data.draw(deterministic_acceptors(semiring, weighted))
    result = minimize(graph, semiring)
    assert_deterministic(result)
    assert_same_scores(result, graph, semiring, ROUNDED_TOLERANCE)
    reference = openfst_minimize(graph, semiring)
    if weighted:  # OpenFst stops summing cycle weights at DELTA, so it may skip moving a tiny total weight
        assert abs(core_nodes(result) - reference.num_states()) <= 1
    else:
        assert core_nodes(result) == reference.num_states()
    assert minimize(result, semiring).num_nodes == result.num_nodes


@pytest.mark.parametrize("semiring, weighted", [("log", False), ("tropical", True), ("log", True)])
def test_minimize_a_lexicon_trie_matches_openfst(semiring, weighted):
    """A trie of 150 random words of 1-12 labels (a lexicon's shape: long chains whose suffixes
    merge round after round, so later refinement rounds examine few classes)."""
    rng = np.random.default_rng(7)
    words = {tuple(rng.integers(1, NUM_LABELS + 1, size=rng.integers(1, 13)).tolist()) for _ in range(150)}
    children, arcs, accept = {(): 0}, [], []
    for word in sorted(words):
        for k in range(1, len(word) + 1):
            if word[:k] not in children:
                children[word[:k]] = len(children)
                arcs.append((children[word[:k - 1]], children[word[:k]], word[k - 1],
                             float(rng.uniform(-2.0, 0.0)) if weighted else 0.0))
        accept.append(children[word])
    src, dst, label, weight = zip(*arcs)
    trie = Graph.from_arrays(list(src), list(dst), list(label), weight=list(weight), start=[0], accept=accept)
    result = minimize(trie, semiring)
    assert_deterministic(result)
    got, want = string_scores(result, semiring, 12), string_scores(trie, semiring, 12)
    assert got.keys() == want.keys() == words
    assert all(got[word] == pytest.approx(want[word], abs=1e-4) for word in words)
    assert core_nodes(result) == openfst_minimize(trie, semiring).num_states() < len(children) / 2
    assert minimize(result, semiring).num_nodes == result.num_nodes


def test_minimize_merges_equivalent_suffixes():
    # a(b|c) with two parallel tails: the two middle nodes and the two ends merge.
    graph = Graph.from_arrays([0, 0, 1, 2], [1, 2, 3, 4], [0, 1, 2, 2], start=[0], accept=[3, 4])
    result = minimize(graph)
    assert result.num_nodes == 3 and result.num_arcs == 3
    assert_same_scores(result, graph, "log")


def test_minimize_keeps_total_weight_on_a_fresh_start_when_the_start_has_incoming_arcs():
    # 0 -a/-1-> 0 loop, 0 -b/-0.5-> 1 accept: pushing moves weight, and the start is re-entered.
    graph = Graph.from_arrays([0, 0], [0, 1], [0, 1], weight=[-1.0, -0.5], start=[0], accept=[1])
    result = minimize(graph, "tropical")
    assert_deterministic(result)
    assert_same_scores(result, graph, "tropical")
    start = result.start.item()
    assert start not in result.dst.tolist()


# ---------------------------------------------------------------------------- errors
def test_errors_on_transducers_and_semirings():
    transducer = Graph.from_arrays([0], [1], [0], [1], start=[0], accept=[1])
    for op in (determinize, minimize):
        with pytest.raises(ValueError, match="acceptors"):
            op(transducer)
        with pytest.raises(ValueError, match="semiring"):
            op(Graph(), "real")


def test_determinize_rejects_epsilon_arcs():
    graph = Graph.from_arrays([0, 1], [1, 2], [EPSILON, 0], start=[0], accept=[2])
    with pytest.raises(ValueError, match="remove_epsilon"):
        determinize(graph)


def test_determinize_stops_on_non_determinizable_input():
    # After "a" * k the subset is {1: 0, 2: -k}: residuals never repeat (no twins property).
    graph = Graph.from_arrays([0, 0, 1, 2], [1, 2, 1, 2], [0, 0, 0, 0], weight=[0.0, 0.0, 0.0, -1.0],
                              start=[0], accept=[1, 2])
    for semiring in ("log", "tropical"):
        with pytest.raises(ValueError, match="not determinizable"):
            determinize(graph, semiring, max_nodes=50)


def test_minimize_rejects_non_deterministic_input():
    twins = Graph.from_arrays([0, 0], [1, 1], [0, 0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="not deterministic"):
        minimize(twins)
    with pytest.raises(ValueError, match="several start nodes"):
        minimize(Graph.from_arrays([0], [1], [0], start=[0, 1], accept=[1]))
    with pytest.raises(ValueError, match="remove_epsilon"):
        minimize(Graph.from_arrays([0, 1], [1, 2], [EPSILON, 0], start=[0], accept=[2]))


def test_minimize_reports_divergent_weights():
    # An unweighted loop in the log semiring has infinite mass once anything is weighted.
    graph = Graph.from_arrays([0, 0], [0, 1], [0, 1], weight=[0.0, -1.0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="does not converge"):
        minimize(graph, "log", max_iterations=500)
    # Tropical pushing converges; the re-entered start is copied to carry the total weight -1.
    assert minimize(graph, "tropical").num_nodes == 3
    positive_cycle = Graph.from_arrays([0, 0], [0, 1], [0, 1], weight=[0.5, -1.0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="does not converge"):
        minimize(positive_cycle, "tropical")
