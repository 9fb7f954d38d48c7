"""remove_epsilon keeps every sequence's weight, leaves no epsilon arcs, and is differentiable."""

import math

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck

from graphs import EPSILON, Graph, forward_score, remove_epsilon

from . import brute
from .oracle import fst, to_openfst, weight_value
from .strategies import graphs

FAST = settings(max_examples=80, deadline=None)


def epsilon_arcs(g):
    return ((g.ilabel == EPSILON) & (g.olabel == EPSILON)).nonzero().reshape(-1).tolist()


def assert_only_the_documented_epsilon_arc(result):
    """At most one epsilon arc per graph: from a start node to an accept node with no other arcs."""
    eps = epsilon_arcs(result)
    assert len(eps) <= 1
    for arc in eps:
        src, dst = result.src[arc].item(), result.dst[arc].item()
        assert src in result.start.tolist() and dst in result.accept.tolist()
        assert (result.src == dst).sum() == 0


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_acyclic_relations_are_kept(g):
    result = remove_epsilon(g)
    assert_only_the_documented_epsilon_arc(result)
    brute.assert_same_strings(brute.string_weights(result), brute.string_weights(g))


@FAST
@given(graphs())
def test_epsilon_cycles_are_summed_like_openfst(g):
    result = remove_epsilon(g)
    assert_only_the_documented_epsilon_arc(result)
    f = to_openfst(g, "log")
    f.rmepsilon(delta=1e-12)
    distances = fst.shortestdistance(f, reverse=True, delta=1e-12)
    want = weight_value(distances[f.start()]) if 0 <= f.start() < len(distances) else -math.inf
    assert forward_score(result).item() == pytest.approx(want, abs=1e-7)


@FAST
@given(graphs(max_nodes=4, max_arcs=8, num_labels=2))
def test_strings_keep_their_weight_through_epsilon_cycles(g):
    # Score a few label sequences in both graphs by intersecting with a linear acceptor.
    from graphs import compose

    result = remove_epsilon(g)
    for inputs in ([], [0], [1], [0, 1], [1, 1, 0]):
        n = len(inputs)
        line = Graph.from_arrays(list(range(n)), list(range(1, n + 1)), inputs, start=[0], accept=[n], num_nodes=n + 1,
                                 dtype=torch.float64)
        a, b = forward_score(compose(line, g)).item(), forward_score(compose(line, result)).item()
        assert a == pytest.approx(b, abs=1e-7) or a == b


@settings(max_examples=40, deadline=None)
@given(graphs())
def test_gradcheck_through_remove_epsilon(g):
    def score(w):
        return forward_score(remove_epsilon(
            Graph.from_arrays(g.src, g.dst, g.ilabel, g.olabel, w, g.start, g.accept, g.num_nodes)))

    w = g.weight.clone().requires_grad_()
    if torch.isfinite(score(w)):
        assert gradcheck(score, (w,))


def test_removed_path_weights_are_folded_in():
    # 0 -eps/-1-> 1 -a/-2-> 2: the result keeps the total -3 on a single arc, with its gradient.
    w = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    g = Graph.from_arrays([0, 1], [1, 2], [EPSILON, 5], weight=w, start=[0], accept=[2])
    result = remove_epsilon(g)
    assert epsilon_arcs(result) == []
    assert [(a[2], a[4]) for a in result.arcs()] == [(5, -3.0)]
    forward_score(result).backward()
    assert w.grad.tolist() == [1.0, 1.0]


def test_weighted_empty_sequence_keeps_one_epsilon_arc():
    g = Graph.from_arrays([0], [1], [EPSILON], weight=[-0.7], start=[0], accept=[1])
    result = remove_epsilon(g)
    assert len(epsilon_arcs(result)) == 1
    assert forward_score(result).item() == pytest.approx(-0.7)


def test_divergent_epsilon_cycle_is_rejected():
    g = Graph.from_arrays([0, 0], [0, 1], [EPSILON, 3], weight=[0.0, 0.0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="epsilon cycles did not converge"):
        remove_epsilon(g)


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_tropical_removal_keeps_best_path_weights(g):
    result = remove_epsilon(g, semiring="tropical")
    assert_only_the_documented_epsilon_arc(result)
    brute.assert_same_strings(brute.string_weights(result, "tropical"), brute.string_weights(g, "tropical"))


@FAST
@given(graphs())
def test_tropical_removal_with_cycles_matches_openfst(g):
    from graphs import viterbi_score

    from .oracle import total_score

    assert viterbi_score(remove_epsilon(g, semiring="tropical")).item() == pytest.approx(
        total_score(g, "tropical"), abs=1e-5)


def test_positive_epsilon_cycle_is_rejected_in_tropical():
    g = Graph.from_arrays([0, 0], [0, 1], [EPSILON, 3], weight=[0.5, 0.0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="positive total weight"):
        remove_epsilon(g, semiring="tropical")
