"""The custom-loss example computes what it claims: CTC restricted to tokens lasting >= 2 frames."""

import itertools
import math
import pathlib
import runpy

import pytest
import torch

from tests.graphs.brute import logsumexp

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "custom_graph_loss.py"


def collapse(path, blank=0):
    return [t for i, t in enumerate(path) if t != blank and (i == 0 or path[i - 1] != t)]


def runs_last_two_frames(path, blank=0):
    runs = [(t, len(list(group))) for t, group in itertools.groupby(path)]
    return all(n >= 2 for t, n in runs if t != blank)


@pytest.mark.parametrize("target", [[1, 2, 2], [3], [], [1, 1]])
def test_loss_equals_enumeration_of_allowed_alignments(target):
    make_graph = runpy.run_path(str(EXAMPLE))["min_duration_ctc_graph"]
    from asr.losses import GraphLoss

    frames, vocab = 7, 4
    log_probs = torch.randn(1, frames, vocab, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    log_probs = log_probs.log_softmax(-1)
    allowed = [p for p in itertools.product(range(vocab), repeat=frames)
               if collapse(list(p)) == target and runs_last_two_frames(list(p))]
    want = -logsumexp(sum(log_probs[0, t, l].item() for t, l in enumerate(p)) for p in allowed)
    got = GraphLoss(lambda batch: [make_graph(t) for t in batch], reduction="none")(log_probs, [target], [frames])
    assert got.item() == pytest.approx(want) if math.isfinite(want) else got.item() == math.inf


def test_example_runs():
    runpy.run_path(str(EXAMPLE), run_name="__main__")


def test_an_utterance_too_fast_for_two_frames_a_token_is_skipped_by_the_factory():
    """Zero loss and zero gradient where no alignment fits, as torch's zero_infinity; the
    others keep plain GraphLoss's values."""
    example = runpy.run_path(str(EXAMPLE))
    log_probs = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0)).log_softmax(-1).requires_grad_()
    targets, lengths = [[1, 2, 3], [1, 2]], [5, 5]  # 3 tokens need 6 frames; 2 tokens fit in 5
    plain = example["factory"](None, [], reduction="none", zero_infinity=False)(log_probs, targets, lengths)
    assert plain[0].item() == math.inf and math.isfinite(plain[1].item())
    skipped = example["factory"](None, [], reduction="none")
    losses = skipped(log_probs, targets, lengths)
    (grad,) = torch.autograd.grad(losses.sum(), log_probs)
    assert losses[0].item() == 0 and losses[1].item() == plain[1].item()
    assert torch.isfinite(grad).all() and (grad[0] == 0).all() and grad[1].abs().sum() > 0
