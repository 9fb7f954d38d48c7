"""nbest, sample and prune against brute-force path enumeration."""

import collections
import math

import pytest
import torch
from hypothesis import assume, given, settings

from graphs import Graph, forward_score, nbest, prune, sample, viterbi_score

from . import brute
from .strategies import graphs

FAST = settings(max_examples=60, deadline=None)


def path_key(path_graph):
    return tuple((a[2], a[3], round(a[4], 9)) for a in path_graph.arcs())


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_nbest_are_the_best_paths_in_order(g):
    want = sorted((score for score, _ in brute.accepting_paths(g)), reverse=True)[:4]
    got = [forward_score(p).item() for p in nbest(g, 4)]
    assert got == pytest.approx(want, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(graphs(acyclic=True), graphs(acyclic=True))
def test_nbest_of_a_list(g1, g2):
    both = nbest([g1, g2], 3)
    assert [[forward_score(p).item() for p in ps] for ps in both] == [
        [forward_score(p).item() for p in nbest(g, 3)] for g in (g1, g2)
    ]


def test_nbest_rejects_cycles_and_bad_n():
    g = Graph.from_arrays([0], [0], [1], start=[0], accept=[0])
    with pytest.raises(ValueError, match="cycle"):
        nbest(g, 2)
    with pytest.raises(ValueError, match="at least 1"):
        nbest(g, 0)


@FAST
@given(graphs(acyclic=True, convergent=False), graphs(acyclic=True).map(lambda g: 0.0) | graphs().map(lambda g: 1.5))
def test_prune_keeps_exactly_the_arcs_on_good_paths(g, threshold):
    paths = brute.accepting_paths(g)
    if not paths:
        assert prune(g, threshold).num_arcs == 0
        return
    best = max(score for score, _ in paths)
    edge = best - threshold
    assume(all(score == edge or abs(score - edge) > 1e-7 for score, _ in paths))  # no near-ties at the edge
    good_arcs = {a for score, arcs in paths if score >= edge for a in arcs}
    pruned = prune(g, threshold)
    assert pruned.num_arcs == len(good_arcs)
    assert viterbi_score(pruned).item() == pytest.approx(best)


def test_samples_follow_path_probabilities():
    g = Graph(dtype=torch.float64)
    nodes = [g.add_node(start=i == 0, accept=i == 3) for i in range(4)]
    for (s, d, label, p) in [(0, 1, 0, 0.7), (0, 2, 1, 0.3), (1, 3, 2, 0.5), (1, 3, 3, 0.5), (2, 3, 4, 1.0),
                             (2, 2, 5, 0.5)]:
        g.add_arc(nodes[s], nodes[d], label, weight=math.log(p))
    total = math.exp(forward_score(g).item())
    draws = sample(g, 4000, generator=torch.Generator().manual_seed(0))
    counts = collections.Counter(tuple(a[2] for a in p.arcs()) for p in draws)
    for labels, weight in [((0, 2), 0.35), ((0, 3), 0.35), ((1, 4), 0.3), ((1, 5, 4), 0.15)]:
        expected = weight / total
        assert counts[labels] / 4000 == pytest.approx(expected, abs=4 * math.sqrt(expected / 4000))
    assert all(forward_score(p).item() > -math.inf for p in draws)


def test_sample_of_a_graph_without_paths_is_empty():
    g = Graph.from_arrays([0], [1], [0], start=[1], accept=[0])
    assert all(p.num_nodes == 0 for p in sample(g, 3))
