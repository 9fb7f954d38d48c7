"""compose / intersect against brute-force string relations and OpenFst."""

import math

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck

from graphs import EPSILON, Graph, compose, forward_score, intersect, remove_epsilon, viterbi_score

from . import brute
from .oracle import fst, to_openfst, weight_value
from .strategies import graphs

FAST = settings(max_examples=80, deadline=None)


def openfst_compose_score(g1, g2, semiring):
    composed = fst.compose(to_openfst(g1, semiring).arcsort(sort_type="olabel"), to_openfst(g2, semiring))
    distances = fst.shortestdistance(composed, reverse=True, delta=1e-12)
    if composed.start() < 0 or composed.start() >= len(distances):
        return -math.inf
    return weight_value(distances[composed.start()])


@FAST
@given(graphs(acyclic=True, convergent=False), graphs(acyclic=True, convergent=False))
def test_compose_realizes_the_composed_string_relation(g1, g2):
    result = compose(g1, g2)
    for semiring in ("log", "tropical"):
        want = brute.compose_strings(brute.string_weights(g1, semiring), brute.string_weights(g2, semiring), semiring)
        brute.assert_same_strings(brute.string_weights(result, semiring), want)


@FAST
@given(graphs(), graphs())
def test_compose_with_cycles_matches_openfst(g1, g2):
    result = compose(g1, g2)
    assert forward_score(result).item() == pytest.approx(openfst_compose_score(g1, g2, "log"), abs=1e-7)
    assert viterbi_score(result).item() == pytest.approx(openfst_compose_score(g1, g2, "tropical"), abs=1e-5)


@FAST
@given(graphs(acyclic=True), graphs(acyclic=True))
def test_output_is_trimmed_and_counts_each_path_once(g1, g2):
    result = compose(g1, g2)
    # Every node lies on an accepting path; duplicated paths would show up as a larger sum.
    if result.num_nodes:
        assert forward_score(result).item() > -math.inf
    want = brute.logsumexp(brute.compose_strings(brute.string_weights(g1), brute.string_weights(g2)).values())
    assert forward_score(result).item() == pytest.approx(want, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(graphs(acyclic=True), graphs(), graphs())
def test_lists_and_broadcasting(g1, g2, g3):
    pair = compose([g1, g1], [g2, g3])
    torch.testing.assert_close(forward_score(pair), torch.stack([forward_score(compose(g1, g)) for g in (g2, g3)]))
    broadcast = compose(g1, [g2, g3])
    torch.testing.assert_close(forward_score(broadcast), forward_score(pair))


@settings(max_examples=40, deadline=None)
@given(graphs(acyclic=True), graphs())
def test_gradcheck_compose_remove_epsilon_forward(g1, g2):
    def score(w1, w2):
        a = Graph.from_arrays(g1.src, g1.dst, g1.ilabel, g1.olabel, w1, g1.start, g1.accept, g1.num_nodes)
        b = Graph.from_arrays(g2.src, g2.dst, g2.ilabel, g2.olabel, w2, g2.start, g2.accept, g2.num_nodes)
        return forward_score(remove_epsilon(compose(a, b)))

    w1, w2 = g1.weight.clone().requires_grad_(), g2.weight.clone().requires_grad_()
    if torch.isfinite(score(w1, w2)):
        assert gradcheck(score, (w1, w2))


def test_epsilon_filter_counts_interleavings_once():
    # a:eps then eps:b can interleave two ways; the filter must keep exactly one.
    g1 = Graph.from_arrays([0], [1], [0], [EPSILON], [0.0], start=[0], accept=[1])
    g2 = Graph.from_arrays([0], [1], [EPSILON], [1], [0.0], start=[0], accept=[1])
    result = compose(g1, g2)
    assert forward_score(result).item() == pytest.approx(0.0)
    assert result.num_arcs == 2


def test_intersect_requires_acceptors():
    acceptor = Graph.from_arrays([0], [1], [0], start=[0], accept=[1])
    transducer = Graph.from_arrays([0], [1], [0], [1], start=[0], accept=[1])
    assert forward_score(intersect(acceptor, acceptor)).item() == 0.0
    with pytest.raises(ValueError, match="acceptors"):
        intersect(acceptor, transducer)


def test_lists_of_different_lengths_are_rejected():
    g = Graph.from_arrays([0], [1], [0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="different lengths"):
        compose([g, g], [g, g, g])


def test_memory_follows_the_output_not_the_product_of_sizes():
    # Two 2,000-node chains: a |Q1|*|Q2| state table (gtn allocates 3 int32 per pair) would
    # need 48 MB; the composition is itself a 2,000-arc chain.
    import tracemalloc

    n = 2_000
    chain = Graph.from_arrays(torch.arange(n), torch.arange(1, n + 1), torch.zeros(n, dtype=torch.long),
                              start=[0], accept=[n])
    tracemalloc.start()
    result = compose(chain, chain)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.num_nodes == n + 1 and result.num_arcs == n
    assert peak < 5e6, f"compose of two {n}-node chains peaked at {peak / 1e6:.1f} MB"
