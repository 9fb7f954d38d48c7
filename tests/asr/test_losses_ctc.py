"""CTCLoss against torch.nn.functional.ctc_loss; GraphLoss on a hand-made graph."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import graphs
from asr.losses import CTCLoss, GraphLoss


def batch(seed, size=6, frames=10, vocab=6, units=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, frames, vocab, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(1, vocab, (size, units), generator=g)
    targets[0, 1] = targets[0, 0]  # a repeated label
    target_lengths = torch.randint(0, units + 1, (size,), generator=g)
    target_lengths[0] = units
    input_lengths = torch.randint(1, frames + 1, (size,), generator=g)
    input_lengths[0] = frames
    input_lengths[1], target_lengths[1] = 2, 5  # impossible: 5 labels in 2 frames
    return x, targets, input_lengths, target_lengths


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("seed", range(4))
def test_zero_infinity_matches_torch(reduction, seed):
    x, targets, input_lengths, target_lengths = batch(seed)
    ours = CTCLoss(reduction=reduction, zero_infinity=True)(x.log_softmax(-1), targets, input_lengths, target_lengths)
    theirs = F.ctc_loss(x.log_softmax(-1).transpose(0, 1), targets, input_lengths, target_lengths,
                        reduction=reduction, zero_infinity=True)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, atol=1e-6, rtol=0)


def test_without_zero_infinity_an_impossible_alignment_is_inf():
    x, targets, input_lengths, target_lengths = batch(0)
    ours = CTCLoss(reduction="none")(x.log_softmax(-1), targets, input_lengths, target_lengths)
    theirs = F.ctc_loss(x.log_softmax(-1).transpose(0, 1), targets, input_lengths, target_lengths, reduction="none")
    assert ours[1].item() == theirs[1].item() == math.inf
    torch.testing.assert_close(ours[2:], theirs[2:])


def test_concatenated_targets_and_other_blank():
    x, targets, input_lengths, target_lengths = batch(1)
    flat = torch.cat([t[:n] for t, n in zip(targets, target_lengths)])
    padded = CTCLoss(reduction="none", zero_infinity=True)(x.log_softmax(-1), targets, input_lengths, target_lengths)
    concatenated = CTCLoss(reduction="none", zero_infinity=True)(x.log_softmax(-1), flat, input_lengths, target_lengths)
    torch.testing.assert_close(padded, concatenated)
    # Blank as the last column: shift labels down by one.
    shifted = CTCLoss(blank=5, reduction="none", zero_infinity=True)(
        x.log_softmax(-1).roll(-1, dims=2), targets - 1, input_lengths, target_lengths)
    torch.testing.assert_close(padded, shifted)


def test_alternative_spellings_sum_the_ctc_likelihoods_of_every_sequence():
    """Targets as alternatives graphs: -log of the summed torch CTC likelihoods of every token
    sequence they spell (words with two pronunciations each, one shared with a neighbour's
    last token so a blank is required between them), with torch's gradient of that sum."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 14, 6, dtype=torch.float64, generator=g, requires_grad=True)
    log_probs = x.log_softmax(-1)
    words = [[[[1, 2], [3]], [[2, 4, 5], [5]]], [[[4]], [[4, 4], [1]], [[2]]]]  # per utterance: words: spellings
    lengths = torch.tensor([14, 9])
    targets = [graphs.alternatives_graph(w, dtype=torch.float64) for w in words]
    ours = CTCLoss(reduction="none")(log_probs, targets, lengths, torch.tensor([3, 3]))
    expected = []
    for b, utterance in enumerate(words):
        sequences = [sum(choice, []) for choice in itertools.product(*utterance)]
        likelihoods = torch.stack([-F.ctc_loss(log_probs[b:b + 1].transpose(0, 1), torch.tensor([seq]), lengths[b:b + 1],
                                               torch.tensor([len(seq)]), reduction="sum") for seq in sequences])
        expected.append(-torch.logsumexp(likelihoods, 0))
    expected = torch.stack(expected)
    torch.testing.assert_close(ours, expected)
    (g_ours,) = torch.autograd.grad(ours.sum(), x, retain_graph=True)  # log_probs is shared by both
    (g_expected,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(g_ours, g_expected)


def test_graph_loss_with_a_learnable_denominator_weight():
    # Numerator: frames must all be label 1. Denominator: any label sequence.
    weight = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    denominator = graphs.Graph.from_arrays([0, 0], [0, 0], [0, 1], weight=weight, start=[0], accept=[0])
    numerator = graphs.Graph.from_arrays([0], [0], [1], start=[0], accept=[0], dtype=torch.float64)
    loss = GraphLoss(lambda targets: numerator, denominator, reduction="none")
    log_probs = torch.log(torch.tensor([[[0.25, 0.75]] * 3], dtype=torch.float64))
    value = loss(log_probs, None, [3])
    assert value.item() == pytest.approx(-3 * math.log(0.75))  # the denominator sums to log 1 = 0
    value.sum().backward()
    assert weight.grad.tolist() == pytest.approx([0.75, 2.25])  # expected label counts
