"""CR-CTC: its CTC part against torch's ctc_loss, its consistency term against a direct sum, and
the trainer handing it two views of every training batch."""

import pytest
import torch
import torch.nn.functional as F

from asr.losses import ConsistencyRegularizedCTC, CTCLoss
from asr.train import Trainer, TrainerConfig
from tests.asr.train_job import SyntheticSpeech, collate, make_model


def two_views(seed=0, size=3, frames=12, vocab=5, units=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2 * size, frames, vocab, dtype=torch.float64, generator=g, requires_grad=True)
    targets = torch.randint(1, vocab, (size, units), generator=g).repeat(2, 1)
    target_lengths = torch.tensor([4, 2, 3]).repeat(2)
    input_lengths = torch.tensor([12, 9, 7]).repeat(2)
    return logits, targets, input_lengths, target_lengths


def test_ctc_part_is_torch_ctc_and_eval_mode_is_plain_ctc():
    logits, targets, input_lengths, target_lengths = two_views()
    log_probs = logits.log_softmax(-1)
    loss = ConsistencyRegularizedCTC(scale=0.0)
    torch_ctc = F.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, reduction="mean")
    torch.testing.assert_close(loss(log_probs, targets, input_lengths, target_lengths), torch_ctc)
    loss.scale = 5.0
    loss.eval()  # validation batches are single views: CR-CTC is CTC there
    torch.testing.assert_close(loss(log_probs[:3], targets[:3], input_lengths[:3], target_lengths[:3]),
                               CTCLoss()(log_probs[:3], targets[:3], input_lengths[:3], target_lengths[:3]))


def test_consistency_is_the_kl_to_the_other_view_over_valid_frames_with_a_detached_target():
    logits, targets, input_lengths, target_lengths = two_views()
    log_probs = logits.log_softmax(-1)
    expected = []
    for row in range(6):
        other, frames = (row + 3) % 6, int(input_lengths[row])
        p = log_probs[other, :frames].detach()
        expected.append((p.exp() * (p - log_probs[row, :frames])).sum())
    consistency = ConsistencyRegularizedCTC.consistency(log_probs, input_lengths)
    torch.testing.assert_close(consistency, torch.stack(expected))
    scale, ctc = 0.3, ConsistencyRegularizedCTC(scale=0.0)(log_probs, targets, input_lengths, target_lengths)
    total = ConsistencyRegularizedCTC(scale=scale)(log_probs, targets, input_lengths, target_lengths)
    torch.testing.assert_close(total, ctc + scale * (torch.stack(expected) / target_lengths).mean())
    # Identical views agree: no consistency loss, and no gradient on the logits.
    same = torch.cat([logits[:3], logits[:3]]).detach().requires_grad_(True)
    kl = ConsistencyRegularizedCTC.consistency(same.log_softmax(-1), input_lengths)
    (grad,) = torch.autograd.grad(kl.sum(), same)
    assert kl.abs().max() < 1e-12 and grad.abs().max() < 1e-12
    with pytest.raises(ValueError, match="odd"):
        ConsistencyRegularizedCTC.consistency(log_probs[:5], input_lengths[:5])


def test_trainer_gives_the_loss_two_views_of_each_training_batch_and_one_in_validation(tmp_path):
    data = SyntheticSpeech(8, seed=0)
    batches = [collate([data[i] for i in range(b, b + 4)]) for b in range(0, 8, 4)]
    seen = []

    class Recording(ConsistencyRegularizedCTC):
        def forward(self, log_probs, targets, input_lengths, target_lengths):
            seen.append((self.training, log_probs.shape[0], torch.equal(targets[:4], targets[4:]) if self.training
                         else None))
            return super().forward(log_probs, targets, input_lengths, target_lengths)

    trainer = Trainer(make_model(0.1), Recording(), TrainerConfig(epochs=1, warmup_steps=1),
                      batches, valid_loader=batches[:1], exp_dir=tmp_path)
    trainer.fit()
    assert seen == [(True, 8, True), (True, 8, True), (False, 4, None)]
