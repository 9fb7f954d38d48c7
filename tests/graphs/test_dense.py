"""intersect_dense / align_dense against torch's ctc_loss and against compose + forward_score."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

import graphs
from graphs import Graph, align_dense, compose, ctc_graph, forward_score, intersect_dense, linear_graph, viterbi_score

from . import brute
from .strategies import graphs as random_graphs


def random_ctc_batch(seed, batch=5, frames=9, vocab=5, max_units=4, repeats=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, vocab, dtype=torch.float64, generator=g)
    targets = torch.randint(1, vocab, (batch, max_units), generator=g)
    if repeats:
        targets[:, 1] = targets[:, 0]  # repeated labels need a blank between them
    target_lengths = torch.randint(0, max_units + 1, (batch,), generator=g)
    input_lengths = torch.randint(1, frames + 1, (batch,), generator=g)
    input_lengths[0] = frames
    return x, targets, input_lengths, target_lengths


@pytest.mark.parametrize("seed", range(6))
def test_matches_torch_ctc_loss_value_and_gradient(seed):
    x, targets, input_lengths, target_lengths = random_ctc_batch(seed)
    x.requires_grad_(True)
    ours = -intersect_dense(x.log_softmax(-1), input_lengths, ctc_graph(targets, target_lengths))
    theirs = F.ctc_loss(x.log_softmax(-1).transpose(0, 1), targets, input_lengths, target_lengths, reduction="none")
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite], atol=1e-6, rtol=0)
    assert torch.isinf(ours[~finite]).all()  # impossible alignments score -inf, as in torch
    (g_ours,) = torch.autograd.grad(ours[finite].sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs[finite].sum(), x)
    torch.testing.assert_close(g_ours[finite], g_theirs[finite], atol=1e-6, rtol=0)
    assert (g_ours[~finite] == 0).all()  # torch gives NaN there unless zero_infinity


def test_longest_possible_target_and_impossible_one():
    # U tokens with repeats need U + (number of repeats) frames.
    log_probs = torch.randn(2, 5, 4, dtype=torch.float64).log_softmax(-1)
    tight = torch.tensor([[1, 1, 2, 3], [1, 1, 1, 2]])
    lengths = torch.tensor([4, 4])
    ours = -intersect_dense(log_probs, torch.tensor([5, 5]), ctc_graph(tight, lengths))
    theirs = F.ctc_loss(log_probs.transpose(0, 1), tight, torch.tensor([5, 5]), lengths, reduction="none")
    assert math.isfinite(ours[0].item()) and ours[0].item() == pytest.approx(theirs[0].item())
    assert ours[1].item() == math.inf and theirs[1].item() == math.inf


@settings(max_examples=40, deadline=None)
@given(random_graphs(max_nodes=4, max_arcs=8, num_labels=3, acyclic=False), st.integers(1, 4), st.integers(0, 10**6))
def test_equals_compose_with_the_emission_graph(g, frames, seed):
    emissions = torch.randn(frames, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    want = forward_score(compose(linear_graph(frames, 3, emissions), g))
    got = intersect_dense(emissions.unsqueeze(0), [frames], g)
    assert got.item() == pytest.approx(want.item(), abs=1e-9) or (got.item() == want.item() == -math.inf)
    want_best = viterbi_score(compose(linear_graph(frames, 3, emissions), g))
    got_best = intersect_dense(emissions.unsqueeze(0), [frames], g, semiring="tropical")
    assert got_best.item() == pytest.approx(want_best.item(), abs=1e-9) or got_best.item() == want_best.item()


@settings(max_examples=25, deadline=None)
@given(random_graphs(max_nodes=4, max_arcs=8, num_labels=3, epsilons=False))
def test_gradcheck_emissions_and_graph_weights(g):
    emissions = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    weight = g.weight.clone().requires_grad_()

    def score(e, w):
        h = Graph.from_arrays(g.src, g.dst, g.ilabel, g.olabel, w, g.start, g.accept, g.num_nodes)
        return intersect_dense(e, [3, 2], h)

    if torch.isfinite(score(emissions, weight)).all():
        assert gradcheck(score, (emissions, weight))
        # Viterbi has no derivative at exact ties between paths: break them first.
        assert gradcheck(lambda e, w: intersect_dense(e, [3, 2], Graph.from_arrays(
            g.src, g.dst, g.ilabel, g.olabel, w, g.start, g.accept, g.num_nodes), "tropical"),
            (emissions + 1e-3 * torch.arange(18.0).reshape(2, 3, 3), weight + 1.7e-3 * torch.arange(1, g.num_arcs + 1)))


def test_shared_graph_gradient_sums_over_the_batch():
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    g = Graph.from_arrays([0, 0], [0, 0], [0, 1], weight=w, start=[0], accept=[0])
    emissions = torch.zeros(3, 4, 2, dtype=torch.float64)
    intersect_dense(emissions, [4, 2, 0], g).sum().backward()
    assert w.grad.tolist() == pytest.approx([3.0, 3.0])  # (4 + 2 + 0) frames, half on each label


def test_epsilon_input_labels_are_removed_first():
    # 0 -eps-> 1 -a-> 2: one frame of label a.
    g = Graph.from_arrays([0, 1], [1, 2], [-1, 1], weight=[-0.5, 0.0], start=[0], accept=[2])
    emissions = torch.log(torch.tensor([[[0.25, 0.75]]], dtype=torch.float64))
    assert intersect_dense(emissions, [1], g).item() == pytest.approx(-0.5 + math.log(0.75))


def test_alignment_is_the_viterbi_path():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 7, 4, dtype=torch.float64).log_softmax(-1)
    targets = [[1, 2], [3, 3], [2]]
    lengths = torch.tensor([7, 5, 6])
    result = align_dense(log_probs, lengths, ctc_graph(targets))
    for b, target in enumerate(targets):
        labels = result.labels[b, : lengths[b]].tolist()
        assert result.labels[b, lengths[b]:].eq(-1).all()
        collapsed = [l for i, l in enumerate(labels) if l != 0 and (i == 0 or labels[i - 1] != l)]
        assert collapsed == target
        frame_scores = log_probs[b, torch.arange(lengths[b]), result.labels[b, : lengths[b]]]
        assert frame_scores.sum().item() == pytest.approx(result.score[b].item())
        best = viterbi_score(compose(linear_graph(int(lengths[b]), 4, log_probs[b, : lengths[b]]), ctc_graph([target])[0]))
        assert result.score[b].item() == pytest.approx(best.item())


def test_bad_arguments():
    g = ctc_graph([[1]])[0]
    with pytest.raises(ValueError, match="columns"):
        intersect_dense(torch.zeros(1, 2, 1), [2], g)
    with pytest.raises(ValueError, match="lengths"):
        intersect_dense(torch.zeros(1, 2, 3), [3], g)
    with pytest.raises(ValueError, match="2 graphs for a batch of 1"):
        intersect_dense(torch.zeros(1, 2, 3), [2], [g, g])
    with pytest.raises(ValueError, match="blank"):
        ctc_graph([[0, 1]])


def test_ctc_topology_composed_with_tokens_is_the_ctc_graph():
    # H o (token sequence) projected on frame labels accepts the same alignments as ctc_graph.
    torch.manual_seed(1)
    log_probs = torch.randn(1, 6, 4, dtype=torch.float64).log_softmax(-1)
    tokens = graphs.sequence_graph([[2, 2, 3]])[0]
    via_h = graphs.project_input(compose(graphs.ctc_topology(4), tokens))
    direct = ctc_graph([[2, 2, 3]])[0]
    assert intersect_dense(log_probs, [6], via_h).item() == pytest.approx(intersect_dense(log_probs, [6], direct).item())
    # The modified topology also lets "2 2" come from consecutive frames without a blank.
    modified = graphs.project_input(compose(graphs.ctc_topology(4, modified=True), tokens))
    assert intersect_dense(log_probs, [6], modified).item() > intersect_dense(log_probs, [6], direct).item()


def test_alternatives_graph_accepts_one_alternative_per_segment_in_order():
    segments = [[[1, 2], [3]], [[4]], [[2, 2, 1], [5], [0, 6]]]
    graph = graphs.alternatives_graph(segments)
    expected = {tuple(sum(choice, [])) for choice in itertools.product(*segments)}
    accepted = brute.string_weights(graph)
    assert {inputs for inputs, _ in accepted} == expected and all(w == 0.0 for w in accepted.values())
    assert graph.is_acceptor() and graph.start.tolist() == [0] and graph.accept.tolist() == [3]
    with pytest.raises(ValueError, match="alternative"):
        graphs.alternatives_graph([[[1]], []])
