"""`asr train` under torchrun: two CPU processes (gloo) share every batch, rank 0 alone writes,
and the model comes out as a one-process run's with the same global batch does."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from asr.data import BucketBatchSampler, Utterance, write_manifest
from asr.model_dir import load_model_dir
from asr.train import load_checkpoint

from .conftest import noise_wav

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"model": {"input_dim": 23, "d_model": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64, "dropout": 0.0},
          "train": {"epochs": 2, "warmup_steps": 2, "log_every": 1, "lr": 3e-3}, "sample_rate": 8000,
          "batch_seconds": 4, "speeds": [], "noise": None, "augment": None, "lm_scale": 0.5}


def train(tmp_path, name, processes):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    command = [*launcher, "-m", "asr.cli", "train", "--train", str(tmp_path / "train.jsonl"), "--valid",
               str(tmp_path / "valid.jsonl"), "--exp-dir", str(tmp_path / name), "--config", str(tmp_path / "c.json")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


def test_two_ranks_share_each_batch_and_rank_zero_alone_writes(tmp_path):
    texts = ["YES NO", "NO NO YES", "YES", "NO YES YES", "NO", "YES YES", "NO YES", "YES NO NO"] * 2
    utterances = [Utterance(f"u{i:02d}", str(noise_wav(tmp_path / f"u{i}.wav", 1.0 + (i % 3) * 0.25, i)),
                            1.0 + (i % 3) * 0.25, text, "s") for i, text in enumerate(texts)]
    write_manifest(tmp_path / "train.jsonl", utterances[:12])
    write_manifest(tmp_path / "valid.jsonl", utterances[12:])
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
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
