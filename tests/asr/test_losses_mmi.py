"""MMI: non-negative, zero only when the denominator's mass is on the transcript; exact gradients."""

import pytest
import torch
from torch.autograd import gradcheck

from asr.losses import MMILoss, bigram_log_probs


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.tensor([[1, 2], [3, 3], [2, 0]])
    return x, targets, torch.tensor([6, 5, 4]), torch.tensor([2, 2, 1])


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_loss_is_positive_and_differentiable(seed, modified):
    x, targets, input_lengths, target_lengths = inputs(seed)
    prior = bigram_log_probs([[1, 2], [3, 3], [2]], 4).double()
    loss = MMILoss(4, transitions=prior, modified=modified, reduction="none")
    assert (loss(x.log_softmax(-1), targets, input_lengths, target_lengths) > 0).all()
    assert gradcheck(lambda x: loss(x.log_softmax(-1), targets, input_lengths, target_lengths), (x,))


def test_learned_transitions_get_gradients():
    x, targets, input_lengths, target_lengths = inputs(0)
    loss = MMILoss(4, learn_transitions=True)
    loss(x.float().log_softmax(-1), targets, input_lengths, target_lengths).backward()
    assert loss.transitions.grad.abs().sum() > 0


def test_zero_when_all_mass_is_on_the_transcript():
    # Emissions that allow only the frames "1 1 0 2" (other columns -inf): the denominator
    # then has a single path, the transcript's, and the loss is 0.
    frames = [1, 1, 0, 2]
    log_probs = torch.full((1, 4, 4), float("-inf"), dtype=torch.float64)
    log_probs[0, torch.arange(4), torch.tensor(frames)] = 0.0
    loss = MMILoss(4, reduction="none")(log_probs, torch.tensor([[1, 2]]), [4], [2])
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    # With mass on another transcript too, the loss is positive.
    log_probs[0, 3, 3] = 0.0
    assert MMILoss(4, reduction="none")(log_probs, torch.tensor([[1, 2]]), [4], [2]).item() > 0.1


def test_ctc_term_adds_that_many_times_the_ctc_loss():
    x, targets, input_lengths, target_lengths = inputs(1)
    log_probs = x.log_softmax(-1)
    plain = MMILoss(4, reduction="none")(log_probs, targets, input_lengths, target_lengths)
    with_ctc = MMILoss(4, reduction="none", ctc_scale=0.3)(log_probs, targets, input_lengths, target_lengths)
    ctc = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths,
                                       reduction="none")
    torch.testing.assert_close(with_ctc, plain + 0.3 * ctc)
    with pytest.raises(ValueError, match="ctc_scale"):
        MMILoss(4, ctc_scale=-1)
