"""Trainer, checkpoints and schedules: exact resume after a real kill, DDP against one process,
gradient accumulation, skipped utterances, atomic saves, averaging and learning-rate values."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.losses import CTCLoss
from asr.train import (
    LATEST_CHECKPOINT,
    Trainer,
    TrainerConfig,
    average_checkpoints,
    cosine_schedule,
    load_checkpoint,
    noam_schedule,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tests.asr.train_job import SyntheticSpeech, build_trainer, collate, make_model

ROOT = Path(__file__).resolve().parents[2]


def _job(exp_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.asr.train_job", "--exp-dir", str(exp_dir), *args]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _assert_same_model(path_a: Path, path_b: Path, atol: float) -> None:
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    assert a["global_step"] == b["global_step"]
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        torch.testing.assert_close(a["model"][name], b["model"][name], atol=atol, rtol=0, msg=name)


def _scalars(exp_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(exp_dir / "tensorboard"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as in the subprocesses (OMP_NUM_THREADS=1): the same float reductions,
    and no OpenMP spinning against other processes (these models are too small to gain from threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- resume


def test_killed_mid_epoch_resumes_like_an_uninterrupted_run(tmp_path):
    """SIGKILL a training process in epoch 2 after a mid-epoch checkpoint; a fresh process resumes
    and its epoch-2 weights equal those of an uninterrupted run (dropout 0.1, random noise bursts
    and SpecAugment masks, so the RNG state matters)."""
    build_trainer(tmp_path / "reference", checkpoint_every_steps=2, augment=True).fit()

    killed = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        child = subprocess.Popen(_job(killed, "--checkpoint-every-steps", "2", "--delay", "0.1", "--augment"), cwd=ROOT,
                                 env=_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and child.poll() is None:
                latest = killed / LATEST_CHECKPOINT
                if latest.exists() and load_checkpoint(latest, mmap=True)["epoch"] == 2:
                    os.kill(child.pid, signal.SIGKILL)
                    break
                time.sleep(0.005)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    state = load_checkpoint(killed / LATEST_CHECKPOINT)
    assert state["epoch"] == 2 and not state["epoch_complete"] and 0 < state["batches_done"] < 8
    assert not (killed / "epoch-2.pt").exists()

    subprocess.run(_job(killed, "--checkpoint-every-steps", "2", "--augment"), cwd=ROOT, env=_env(), check=True,
                   capture_output=True, timeout=120)
    _assert_same_model(killed / "epoch-2.pt", tmp_path / "reference" / "epoch-2.pt", atol=1e-6)
    assert load_checkpoint(killed / "epoch-2.pt")["model_config"]["d_model"] == 32


class _Interrupt(Exception):
    pass


def test_resume_without_sampler_reads_past_finished_batches(tmp_path):
    """A loader with no sampler (a fixed list of batches) resumes by reading past the trained ones."""
    data = SyntheticSpeech(32, seed=0)
    batches = [collate([data[i] for i in range(b, b + 4)]) for b in range(0, 32, 4)]

    def trainer(exp_dir, loader):
        torch.manual_seed(0)
        config = TrainerConfig(epochs=2, lr=3e-3, warmup_steps=3, checkpoint_every_steps=3)
        return Trainer(make_model(0.1), CTCLoss(), config, loader, exp_dir=exp_dir)

    trainer(tmp_path / "reference", batches).fit()

    class Interrupted:
        """Stops the run in epoch 2 after 5 batches, one past its last checkpoint (step 12)."""

        def __init__(self):
            self.epochs = 0

        def __len__(self):
            return len(batches)

        def __iter__(self):
            self.epochs += 1
            for number, batch in enumerate(batches):
                if self.epochs == 2 and number == 5:
                    raise _Interrupt
                yield batch

    with pytest.raises(_Interrupt):
        trainer(tmp_path / "resumed", Interrupted()).fit()
    assert load_checkpoint(tmp_path / "resumed" / LATEST_CHECKPOINT)["batches_done"] == 4
    trainer(tmp_path / "resumed", batches).fit(resume=True)
    _assert_same_model(tmp_path / "resumed" / "epoch-2.pt", tmp_path / "reference" / "epoch-2.pt", atol=1e-6)


# ---------------------------------------------------------------- DDP, accumulation


def test_ddp_two_processes_match_one_process_with_the_global_batch(tmp_path):
    """torchrun, 2 CPU ranks on gloo, 4 utterances each = 1 process with 8: same losses and weights."""
    single = build_trainer(tmp_path / "single", epochs=1, global_batch=8, dropout=0.0)
    single_metrics = single.fit()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "tests.asr.train_job", "--exp-dir", str(tmp_path / "ddp"), "--epochs", "1", "--dropout", "0"]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    single_losses, ddp_losses = _scalars(tmp_path / "single", "train/loss"), _scalars(tmp_path / "ddp", "train/loss")
    assert sorted(ddp_losses) == sorted(single_losses) == list(range(1, 9))
    np.testing.assert_allclose([ddp_losses[s] for s in range(1, 9)], [single_losses[s] for s in range(1, 9)],
                               rtol=1e-4)
    _assert_same_model(tmp_path / "ddp" / "epoch-1.pt", tmp_path / "single" / "epoch-1.pt", atol=1e-5)
    ddp_metrics = load_checkpoint(tmp_path / "ddp" / "epoch-1.pt")["metrics"]
    assert ddp_metrics["valid/loss"] == pytest.approx(single_metrics["valid/loss"], rel=1e-4)


def test_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    build_trainer(tmp_path / "full", epochs=1, global_batch=8, dropout=0.0).fit()
    halves = build_trainer(tmp_path / "halves", epochs=1, global_batch=4, dropout=0.0, accumulate=2)
    halves.fit()
    assert halves.global_step == 8
    _assert_same_model(tmp_path / "halves" / "epoch-1.pt", tmp_path / "full" / "epoch-1.pt", atol=1e-5)


# ---------------------------------------------------------------- unreadable audio


def test_skipped_utterances_are_counted_and_training_goes_on(tmp_path, caplog):
    data = SyntheticSpeech(24, seed=0, unreadable=frozenset({"u1", "u8", "u9", "u10", "u11"}))
    batches = [collate([data[i] for i in range(b, b + 4)]) for b in range(0, 24, 4)]  # batch 3 is all unreadable
    config = TrainerConfig(epochs=1, warmup_steps=2, log_every=1)
    trainer = Trainer(make_model(0.1), CTCLoss(), config, batches, exp_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="asr.train"):
        trainer.fit()
    assert trainer.skipped_utterances == 5
    assert trainer.global_step == 5  # six batches, one with nothing left to train on
    assert "u1" in caplog.text and "u8" in caplog.text and "stepped over" in caplog.text
    assert load_checkpoint(tmp_path / "epoch-1.pt")["skipped_utterances"] == 5


def test_augment_applies_to_training_batches_only(tmp_path):
    """`augment` sees every training batch's padded features and no validation batch."""
    data = SyntheticSpeech(16, seed=0)
    batches = [collate([data[i] for i in range(b, b + 4)]) for b in range(0, 16, 4)]
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, features):
            seen.append(tuple(features.shape))
            return features

    config = TrainerConfig(epochs=1, warmup_steps=2)
    trainer = Trainer(make_model(0.0), CTCLoss(), config, batches, valid_loader=batches[:1], augment=Recorder(),
                      exp_dir=tmp_path)
    trainer.fit()
    assert seen == [tuple(b["features"].shape) for b in batches]


# ---------------------------------------------------------------- checkpoint files


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "epoch-1.pt"
    save_checkpoint(path, {"value": torch.tensor([1.0])})

    def torch_save_then_fail(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", torch_save_then_fail)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"value": torch.tensor([2.0])})
    monkeypatch.undo()
    assert load_checkpoint(path)["value"].item() == 1.0
    assert os.listdir(tmp_path) == ["epoch-1.pt"]  # no temporary file left behind


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt.pt"):
        load_checkpoint(tmp_path / "corrupt.pt")


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[:2] == expected[:2]
    assert torch.equal(got[2], expected[2])


def test_average_checkpoints(tmp_path):
    paths = []
    for i, value in enumerate((1.0, 2.0, 6.0)):
        state = {"weight": torch.full((2, 2), value), "half": torch.full((3,), value, dtype=torch.float16),
                 "count": torch.tensor(i + 10)}
        paths.append(tmp_path / f"epoch-{i}.pt")
        save_checkpoint(paths[-1], {"model": state} if i < 2 else state)  # trainer checkpoints or bare state dicts
    averaged = average_checkpoints(paths)
    assert torch.equal(averaged["weight"], torch.full((2, 2), 3.0))
    assert averaged["half"].dtype == torch.float16 and torch.equal(averaged["half"], torch.full((3,), 3.0).half())
    assert averaged["count"].item() == 12  # integers from the last checkpoint
    save_checkpoint(tmp_path / "other.pt", {"model": {"weight": torch.zeros(2, 2)}})
    with pytest.raises(ValueError, match="other.pt"):
        average_checkpoints([paths[0], tmp_path / "other.pt"])


def test_only_the_last_epochs_are_kept_and_the_final_model_is_their_average(tmp_path):
    trainer = build_trainer(tmp_path, epochs=4, count=16, keep_last=2, average_last=2)
    metrics = trainer.fit()
    assert sorted(p.name for p in tmp_path.glob("epoch-*.pt")) == ["epoch-3.pt", "epoch-4.pt"]
    last, before = load_checkpoint(tmp_path / "epoch-4.pt")["model"], load_checkpoint(tmp_path / "epoch-3.pt")["model"]
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, (last[name] + before[name]) / 2, msg=name)
    assert not torch.equal(last["output.weight"], before["output.weight"])  # the average is not a copy of either
    assert metrics == trainer.validate()  # fit reports the averaged model's validation
    again = build_trainer(tmp_path, epochs=4, count=16, keep_last=2, average_last=2)
    again.fit()  # a rerun after the end trains nothing and averages the same two epochs
    for name, value in again.model.state_dict().items():
        torch.testing.assert_close(value, trainer.model.state_dict()[name], msg=name)
    with pytest.raises(ValueError, match="keep_last"):
        TrainerConfig(keep_last=2, average_last=3)


def test_warmup_epochs_size_the_warmup_to_the_data(tmp_path):
    """32 utterances in batches of 8 are 4 steps an epoch: 1.5 epochs of warmup is 6 steps."""
    trainer = build_trainer(tmp_path, epochs=3, count=32, warmup_steps=None, warmup_epochs=1.5, schedule="cosine")
    factors = [trainer.scheduler.lr_lambdas[0](step) for step in range(12)]
    assert factors[:6] == pytest.approx([n / 6 for n in range(1, 7)])
    assert factors[6] < 1.0 and factors[11] == pytest.approx(0.0)  # the cosine ends with the 12th step
    fixed = build_trainer(tmp_path / "fixed", epochs=3, count=32, warmup_steps=2, warmup_epochs=1.5, schedule="cosine")
    assert fixed.scheduler.lr_lambdas[0](1) == 1.0  # warmup_steps, when given, wins


# ---------------------------------------------------------------- schedules


def _rates(scheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def _optimizer(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_noam_schedule_values():
    # d_model 256, warmup 4: 256^-0.5 * min(n^-0.5, n * 4^-1.5) for update n = 1, 2, ...
    rates = _rates(noam_schedule(_optimizer(1.0), warmup_steps=4, d_model=256), 16)
    assert rates[0] == pytest.approx(0.0625 / 8)
    assert rates[3] == pytest.approx(0.0625 / 2)  # the peak, at n = warmup
    assert rates[15] == pytest.approx(0.0625 / 4)
    assert max(rates) == rates[3]
    scaled = _rates(noam_schedule(_optimizer(0.5), warmup_steps=4, peak_lr=1e-3), 16)
    assert scaled[0] == pytest.approx(2.5e-4) and scaled[3] == pytest.approx(1e-3) and scaled[15] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="exactly one"):
        noam_schedule(_optimizer(1.0), warmup_steps=4)


def test_cosine_schedule_values():
    rates = _rates(cosine_schedule(_optimizer(0.1), warmup_steps=2, total_steps=10), 14)
    expected = [0.05, 0.1] + [0.05 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)] + [0.0] * 4
    assert rates == pytest.approx(expected, abs=1e-12)
    floor = _rates(cosine_schedule(_optimizer(0.1), warmup_steps=2, total_steps=10, min_lr_ratio=0.1), 12)
    assert floor[-1] == pytest.approx(0.01) and floor[5] == pytest.approx(0.01 + 0.09 * 0.5)
