"""`asr train` under torchrun: two CPU processes (gloo) share every batch, rank 0 alone writes,
and the model comes out as a one-process run's with the same global batch does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from asr.data import BucketBatchSampler, Utterance, write_manifest
from asr.model_dir import load_model_dir
from asr.train import LATEST_CHECKPOINT, load_checkpoint

from .conftest import noise_wav

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"model": {"input_dim": 23, "d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "dropout": 0.0},
          "train": {"epochs": 2, "warmup_steps": 2, "log_every": 1, "lr": 3e-3}, "sample_rate": 8000,
          "batch_seconds": 4, "speeds": [], "noise": None, "augment": None, "lm_scale": 0.5}


ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def command(tmp_path, name, processes, config="c.json"):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    return [*launcher, "-m", "asr.cli", "train", "--train", str(tmp_path / "train.jsonl"), "--valid",
            str(tmp_path / "valid.jsonl"), "--exp-dir", str(tmp_path / name), "--config", str(tmp_path / config)]


def train(tmp_path, name, processes, config="c.json"):
    result = subprocess.run(command(tmp_path, name, processes, config), cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


def make_task(tmp_path, config=CONFIG, count=16):
    texts = ["YES NO", "NO NO YES", "YES", "NO YES YES", "NO", "YES YES", "NO YES", "YES NO NO"] * (count // 8)
    utterances = [Utterance(f"u{i:02d}", str(noise_wav(tmp_path / f"u{i}.wav", 1.0 + (i % 3) * 0.25, i)),
                            1.0 + (i % 3) * 0.25, text, "s") for i, text in enumerate(texts)]
    write_manifest(tmp_path / "train.jsonl", utterances[:count - 4])
    write_manifest(tmp_path / "valid.jsonl", utterances[count - 4:])
    (tmp_path / "c.json").write_text(json.dumps(config))
    return utterances


def test_two_ranks_share_each_batch_and_rank_zero_alone_writes(tmp_path):
    utterances = make_task(tmp_path)
    log = train(tmp_path, "ddp", 2)
    assert log.count("asr train: model directory") == 1 and log.count("epoch 2 done") == 1  # rank 0 speaks
    checkpoint = load_checkpoint(tmp_path / "ddp" / "epoch-2.pt")
    assert checkpoint["world_size"] == 2
    # The epoch is planned in batches of 4 / 2 seconds, and each rank takes every other one: half
    # of them each, so a step (one batch on each rank) is a global batch of 4 seconds.
    durations = [u.duration for u in utterances[:12]]
    planned = len(BucketBatchSampler(durations, 2.0))
    assert checkpoint["global_step"] == 2 * -(-planned // 2)
    assert len(list((tmp_path / "ddp" / "tensorboard").iterdir())) == 1
    saved = load_model_dir(tmp_path / "ddp" / "model")
    assert saved.graph.words == ["NO", "YES"]

    train(tmp_path, "single", 1)
    single = load_checkpoint(tmp_path / "single" / "epoch-2.pt")
    # The same global batch in another composition: losses close, not equal.
    assert abs(checkpoint["metrics"]["valid/loss"] - single["metrics"]["valid/loss"]) < 0.25 * single["metrics"][
        "valid/loss"], (checkpoint["metrics"], single["metrics"])
    assert torch.isfinite(torch.tensor(checkpoint["metrics"]["valid/loss"]))


def children(pid):
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_killed_under_torchrun_it_resumes_exactly(tmp_path):
    """SIGKILL the whole torchrun job in epoch 2 (after a mid-epoch checkpoint), rerun it: the
    epoch-3 weights equal an uninterrupted torchrun run's (dropout on: every rank's RNG counts)."""
    config = {**CONFIG, "model": {**CONFIG["model"], "dropout": 0.1},
              "train": {**CONFIG["train"], "epochs": 3, "checkpoint_every_steps": 2, "average_last": 1}}
    make_task(tmp_path, config, count=40)
    train(tmp_path, "whole", 2)
    job = subprocess.Popen(command(tmp_path, "killed", 2), cwd=ROOT, env=ENV, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest, deadline = tmp_path / "killed" / LATEST_CHECKPOINT, time.monotonic() + 240
    try:
        while job.poll() is None and time.monotonic() < deadline:
            if latest.exists() and load_checkpoint(latest, mmap=True)["epoch"] >= 2:
                break
            time.sleep(0.005)
    finally:
        for worker in children(job.pid):  # torchrun's workers, then torchrun itself
            os.kill(worker, signal.SIGKILL)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert not (tmp_path / "killed" / "epoch-3.pt").exists(), "the job should have been killed before its end"
    assert load_checkpoint(latest)["epoch"] == 2  # mid-epoch, as a rule: the poll is quicker than an epoch
    log = train(tmp_path, "killed", 2)
    assert f"resuming from {latest}" in log
    whole, resumed = load_checkpoint(tmp_path / "whole" / "epoch-3.pt"), load_checkpoint(tmp_path / "killed" / "epoch-3.pt")
    assert resumed["global_step"] == whole["global_step"]
    for name, weights in whole["model"].items():
        torch.testing.assert_close(resumed["model"][name], weights, atol=1e-6, rtol=0, msg=name)
