"""forward_score, viterbi_score, viterbi_path and arc_posteriors against brute force and OpenFst."""

import math

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck

from graphs import (
    Graph,
    arc_posteriors,
    forward_score,
    segment_argmax,
    segment_logsumexp,
    segment_max,
    viterbi_path,
    viterbi_score,
)

from . import brute
from .oracle import total_score
from .strategies import graphs

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_acyclic_scores_equal_path_enumeration(g):
    assert forward_score(g).item() == pytest.approx(brute.total(g, "log"), abs=1e-9)
    assert viterbi_score(g).item() == pytest.approx(brute.total(g, "tropical"), abs=1e-9)


@FAST
@given(graphs())
def test_cyclic_scores_equal_openfst(g):
    assert forward_score(g).item() == pytest.approx(total_score(g, "log"), abs=1e-7)
    assert viterbi_score(g).item() == pytest.approx(total_score(g, "tropical"), abs=1e-5)


@FAST
@given(graphs(), graphs(), graphs())
def test_a_list_scores_like_its_items(g1, g2, g3):
    together = forward_score([g1, g2, g3])
    alone = torch.stack([forward_score(g) for g in (g1, g2, g3)])
    torch.testing.assert_close(together, alone, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(viterbi_score([g1, g2, g3]), torch.stack([viterbi_score(g) for g in (g1, g2, g3)]))


@FAST
@given(graphs())
def test_gradcheck_through_forward_and_viterbi(g):
    def rebuild(w):
        return Graph.from_arrays(g.src, g.dst, g.ilabel, g.olabel, w, g.start, g.accept, g.num_nodes)

    w = g.weight.clone().requires_grad_()
    if not torch.isfinite(forward_score(g)):
        return
    assert gradcheck(lambda w: forward_score(rebuild(w)), (w,))
    # Viterbi is piecewise linear: check away from ties by perturbing the weights slightly.
    w2 = (g.weight + 1e-3 * torch.arange(g.num_arcs, dtype=torch.float64)).requires_grad_()
    assert gradcheck(lambda w: viterbi_score(rebuild(w)), (w2,), eps=1e-6)


@FAST
@given(graphs())
def test_arc_posteriors_are_the_gradient(g):
    w = g.weight.clone().requires_grad_()
    score = forward_score(Graph.from_arrays(g.src, g.dst, g.ilabel, g.olabel, w, g.start, g.accept, g.num_nodes))
    if not torch.isfinite(score):
        assert arc_posteriors(g).abs().sum() == 0
        return
    score.backward()
    torch.testing.assert_close(arc_posteriors(g), w.grad)


@FAST
@given(graphs(acyclic=True, convergent=False))
def test_viterbi_path_is_a_best_path(g):
    path = viterbi_path(g)
    best = viterbi_score(g).item()
    if best == -math.inf:
        assert path.num_nodes == 0
        return
    assert forward_score(path).item() == pytest.approx(best)
    assert path.num_arcs == path.num_nodes - 1


def test_viterbi_path_keeps_the_gradient_link():
    w = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    g = Graph.from_arrays([0, 0, 1], [1, 1, 2], [0, 1, 2], weight=w, start=[0], accept=[2])
    path = viterbi_path(g)
    assert [a[2] for a in path.arcs()] == [0, 2]
    forward_score(path).backward()
    assert w.grad.tolist() == [1.0, 0.0, 1.0]


def test_divergent_cycles_are_rejected_not_mis_scored():
    g = Graph(dtype=torch.float64)
    g.add_node(start=True, accept=True)
    g.add_arc(0, 0, 0, weight=0.0)  # sum over 0, 1, 2, ... loops: infinite
    with pytest.raises(ValueError, match="did not converge"):
        forward_score(g)
    assert viterbi_score(g).item() == 0.0
    g.add_arc(0, 0, 1, weight=0.1)  # a positive cycle: the best path is unbounded
    with pytest.raises(ValueError, match="positive total weight"):
        viterbi_score(g)


def test_self_loop_geometric_series():
    g = Graph(dtype=torch.float64)
    g.add_node(start=True)
    g.add_node(accept=True)
    g.add_arc(0, 0, 0, weight=math.log(0.5))
    g.add_arc(0, 1, 1, weight=0.0)
    assert forward_score(g).item() == pytest.approx(math.log(2.0))


def test_unreachable_graph_has_zero_gradient():
    w = torch.tensor([0.3], requires_grad=True)
    g = Graph.from_arrays([0], [1], [0], weight=w, start=[1], accept=[0])
    score = forward_score(g)
    assert score.item() == -math.inf
    score.backward()
    assert w.grad.tolist() == [0.0]


def test_segment_argmax_is_the_first_index_of_each_segments_maximum():
    torch.manual_seed(1)
    values = torch.randint(0, 4, (60,)).double()  # many ties
    values[::7] = -math.inf
    segments = torch.randint(0, 8, (60,))
    segments[segments == 5] = 6  # segment 5 is empty
    expected = []
    for s in range(8):
        members = [i for i in range(60) if segments[i] == s]
        expected.append(max(members, key=lambda i: (values[i].item(), -i)) if members else -1)
    assert segment_argmax(values, segments, 8).tolist() == expected


def test_segment_reductions_equal_per_segment_torch_reductions_and_their_gradients():
    torch.manual_seed(0)
    values = (torch.randn(40, dtype=torch.float64) * 30).requires_grad_(True)  # wide range: needs the shift
    segments = torch.randint(0, 6, (40,))
    segments[segments == 3] = 4  # segment 3 is empty
    total = segment_logsumexp(values, segments, 7)
    peak = segment_max(values, segments, 7)
    for s in range(7):
        members = values[segments == s]
        expected = torch.logsumexp(members, 0) if members.numel() else torch.tensor(-math.inf, dtype=torch.float64)
        assert total[s].item() == pytest.approx(expected.item(), abs=1e-9)
        assert peak[s].item() == (members.max().item() if members.numel() else -math.inf)
    assert gradcheck(lambda v: segment_logsumexp(v, segments, 6)[[0, 1, 2, 4, 5]], (values,))
