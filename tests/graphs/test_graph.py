"""Graph construction, copies and input validation."""

import math

import pytest
import torch

from graphs import EPSILON, Graph, forward_score


def test_incremental_and_array_construction_agree():
    g = Graph()
    a, b, c = g.add_node(start=True), g.add_node(), g.add_node(accept=True)
    g.add_arc(a, b, 0, weight=-1.0)
    g.add_arc(b, c, 1, 2, weight=0.5)
    h = Graph.from_arrays([0, 1], [1, 2], [0, 1], [0, 2], [-1.0, 0.5], start=[0], accept=[2])
    assert g.arcs() == h.arcs() == [(0, 1, 0, 0, -1.0), (1, 2, 1, 2, 0.5)]
    assert g.num_nodes == h.num_nodes == 3 and g.num_arcs == 2
    assert g.start.tolist() == [0] and g.accept.tolist() == [2]
    assert not g.is_acceptor()


def test_arcs_added_after_reading_keep_the_gradient_link():
    weight = torch.tensor([-1.0], requires_grad=True)
    g = Graph.from_arrays([0], [1], [0], weight=weight, start=[0], accept=[1])
    g.add_node(accept=True)
    g.add_arc(0, 2, 1, weight=-2.0)
    forward_score(g).backward()
    expected = math.exp(-1.0) / (math.exp(-1.0) + math.exp(-2.0))
    assert weight.grad.item() == pytest.approx(expected)


def test_weight_setter_and_copies():
    g = Graph.from_arrays([0], [1], [3], start=[0], accept=[1])
    learnable = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    g.weight = learnable
    assert g.dtype == torch.float64
    clone, detached = g.clone(), g.detach()
    assert clone.weight.requires_grad and not detached.weight.requires_grad
    assert g.to(dtype=torch.float32).weight.dtype == torch.float32
    with pytest.raises(ValueError, match="shape"):
        g.weight = torch.zeros(2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(src=[0], dst=[5], ilabel=[0], num_nodes=2), "dst names node 5"),
        (dict(src=[-1], dst=[0], ilabel=[0], num_nodes=2), "src names node -1"),
        (dict(src=[0], dst=[1], ilabel=[-2]), "ilabel -2 is below EPSILON"),
        (dict(src=[0], dst=[1], ilabel=[0], olabel=[-3]), "olabel -3"),
        (dict(src=[0], dst=[1], ilabel=[0], weight=[float("nan")]), "weight of arc 0 is NaN"),
        (dict(src=[0], dst=[1], ilabel=[0], start=[4], num_nodes=2), "start names node 4"),
        (dict(src=[0, 1], dst=[1], ilabel=[0, 0]), "dst has 1 entries"),
        (dict(src=[0.5], dst=[1], ilabel=[0]), "must hold integers"),
    ],
)
def test_from_arrays_rejects_bad_input(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Graph.from_arrays(**kwargs)


def test_add_arc_rejects_bad_input():
    g = Graph()
    g.add_node(start=True)
    with pytest.raises(ValueError, match="dst node 3 does not exist"):
        g.add_arc(0, 3, 0)
    with pytest.raises(ValueError, match="below EPSILON"):
        g.add_arc(0, 0, -5)
    with pytest.raises(ValueError, match="NaN"):
        g.add_arc(0, 0, 0, weight=float("nan"))
    g.add_arc(0, 0, EPSILON)  # epsilon is a valid label


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_devices_are_rejected():
    with pytest.raises(ValueError, match="devices"):
        Graph.from_arrays(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]),
                          weight=torch.zeros(1, device="cuda"))


def test_mixed_devices_are_rejected_on_meta_device():
    weight = torch.zeros(1, device="meta")
    with pytest.raises(ValueError, match="weight is on meta"):
        Graph.from_arrays(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]), weight=weight, device="cpu")


def test_empty_graph_scores_minus_infinity():
    assert forward_score(Graph()).item() == -math.inf
    g = Graph()
    g.add_node(start=True)
    g.add_node(accept=True)
    assert forward_score(g).item() == -math.inf
