"""Rational, label and structural operations against brute-force string relations and OpenFst."""

import math

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck

from graphs import (
    Graph,
    arc_sort,
    closure,
    concat,
    connect,
    forward_score,
    invert,
    project_input,
    project_output,
    reverse,
    topsort,
    union,
    viterbi_score,
)

from . import brute
from .oracle import fst, to_openfst, total_score, weight_value
from .strategies import graphs

FAST = settings(max_examples=60, deadline=None)
acyclic = graphs(acyclic=True, convergent=False)


def strings(g, semiring="log", max_length=12):
    return brute.string_weights(g, semiring, max_length)


@FAST
@given(acyclic, acyclic, acyclic)
def test_union_is_the_sum_of_relations(g1, g2, g3):
    want = {}
    for g in (g1, g2, g3):
        for key, w in strings(g).items():
            want[key] = brute.logsumexp([want.get(key, -math.inf), w])
    brute.assert_same_strings(strings(union([g1, g2, g3])), want)


@FAST
@given(acyclic, acyclic)
def test_concat_joins_relations(g1, g2):
    want = {}
    for (x1, y1), w1 in strings(g1).items():
        for (x2, y2), w2 in strings(g2).items():
            key = (x1 + x2, y1 + y2)
            want[key] = brute.logsumexp([want.get(key, -math.inf), w1 + w2])
    brute.assert_same_strings(strings(concat(g1, g2), max_length=30), want)
    brute.assert_same_strings(strings(concat([g1, g2]), max_length=30), want)


def test_concat_of_nothing_accepts_the_empty_sequence():
    assert forward_score(concat([])).item() == 0.0


@FAST
@given(graphs())
def test_closure_matches_openfst(g):
    inner = forward_score(g).item()
    if inner >= -0.5:  # the sum over repetitions converges too slowly (or not at all) to compare
        return
    f = to_openfst(g, "log")
    f.closure()
    distances = fst.shortestdistance(f, reverse=True, delta=1e-12)
    assert forward_score(closure(g)).item() == pytest.approx(weight_value(distances[f.start()]), abs=1e-6)
    # Closure accepts the empty sequence with weight 0, so its total is -log(1 - exp(inner)).
    assert forward_score(closure(g)).item() == pytest.approx(-math.log1p(-math.exp(inner)), abs=1e-6)


def test_closure_of_a_graph_scoring_above_zero_diverges():
    g = Graph.from_arrays([0, 0], [1, 1], [0, 1], weight=[0.0, 0.0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="did not converge"):
        forward_score(closure(g))


def test_closure_splits_each_sequence_into_words_once():
    word = Graph.from_arrays([0], [1], [7], weight=[math.log(0.5)], start=[0], accept=[1])
    star = closure(word)
    # Sum over k >= 0 of 0.5**k = 2.
    assert forward_score(star).item() == pytest.approx(math.log(2.0))
    assert strings(star, max_length=7)[((7, 7), (7, 7))] == pytest.approx(2 * math.log(0.5))


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_label_rewrites(g):
    rel = strings(g)
    brute.assert_same_strings(strings(invert(g)), {(y, x): w for (x, y), w in rel.items()})
    want_in, want_out = {}, {}
    for (x, y), w in rel.items():
        want_in[x, x] = brute.logsumexp([want_in.get((x, x), -math.inf), w])
        want_out[y, y] = brute.logsumexp([want_out.get((y, y), -math.inf), w])
    brute.assert_same_strings(strings(project_input(g)), want_in)
    brute.assert_same_strings(strings(project_output(g)), want_out)


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_structure_ops_keep_every_relation(g):
    rel = strings(g)
    brute.assert_same_strings(strings(reverse(g)), {(x[::-1], y[::-1]): w for (x, y), w in rel.items()})
    brute.assert_same_strings(strings(connect(g)), rel)
    sorted_graph = topsort(g)
    brute.assert_same_strings(strings(sorted_graph), rel)
    assert bool((sorted_graph.src < sorted_graph.dst).all())
    by_input = arc_sort(g)
    keys = list(zip(by_input.src.tolist(), by_input.ilabel.tolist()))
    assert keys == sorted(keys)
    brute.assert_same_strings(strings(by_input), rel)


@FAST
@given(graphs())
def test_connect_keeps_only_useful_nodes_and_the_score(g):
    trimmed = connect(g)
    assert forward_score(trimmed).item() == pytest.approx(total_score(g), abs=1e-7)
    if trimmed.num_nodes:
        f = to_openfst(g)
        f.connect()
        assert trimmed.num_nodes == f.num_states() - 1  # OpenFst also keeps our super-start
    assert trimmed.num_nodes <= g.num_nodes


def test_topsort_rejects_cycles():
    g = Graph.from_arrays([0, 1], [1, 0], [0, 0], start=[0], accept=[1])
    with pytest.raises(ValueError, match="cycle"):
        topsort(g)


@settings(max_examples=30, deadline=None)
@given(graphs(acyclic=True), graphs(acyclic=True))
def test_gradcheck_union_concat_closure(g1, g2):
    def score(w1, w2):
        a = Graph.from_arrays(g1.src, g1.dst, g1.ilabel, g1.olabel, w1, g1.start, g1.accept, g1.num_nodes)
        b = Graph.from_arrays(g2.src, g2.dst, g2.ilabel, g2.olabel, w2, g2.start, g2.accept, g2.num_nodes)
        u = union([a, b])
        return torch.stack([forward_score(u), forward_score(concat(a, b)), viterbi_score(concat(u, b)),
                            forward_score(closure(a) if forward_score(a.detach()) < -0.1 else a)])

    w1, w2 = g1.weight.clone().requires_grad_(), g2.weight.clone().requires_grad_()
    values = score(w1, w2)
    if torch.isfinite(values).all():
        # Break exact ties between paths, where the Viterbi term has no derivative.
        w1 = w1 + 1e-3 * torch.arange(1, w1.numel() + 1)
        w2 = w2 + 1.7e-3 * torch.arange(1, w2.numel() + 1)
        assert gradcheck(score, (w1, w2), eps=1e-6)
