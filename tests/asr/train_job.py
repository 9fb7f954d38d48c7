"""A tiny training job for the trainer tests, run in-process or as `python -m tests.asr.train_job`
(alone, under torchrun, or as the process a test kills and resumes).

The data is the synthetic task of `tests.asr.synthetic` (frames doubled so the conv subsampling
leaves room for CTC alignments); the model a 1-layer TransformerEncoder with d_model 32.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from asr.features import GlobalCMVN, NoiseBursts, SpecAugment
from asr.losses import CTCLoss
from asr.model import EncoderConfig, TransformerEncoder
from asr.train import Trainer, TrainerConfig, cleanup, init_distributed
from tests.asr.synthetic import make_task

NUM_TOKENS, DIM = 5, 16


class SyntheticSpeech(torch.utils.data.Dataset):
    """Utterances "u0", "u1", ... of the synthetic task; ids in `unreadable` load as None."""

    def __init__(self, count: int, seed: int, unreadable: frozenset[str] = frozenset()):
        features, lengths, self.tokens, self.token_lengths = make_task(NUM_TOKENS, count, DIM, seed)
        self.features, self.lengths = features.repeat_interleave(2, dim=1), lengths * 2
        self.unreadable = unreadable

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict | str:
        utterance = f"u{index}"
        if utterance in self.unreadable:
            return utterance
        return {"id": utterance, "features": self.features[index, : self.lengths[index]],
                "tokens": self.tokens[index, : self.token_lengths[index]]}


def collate(samples: list, delay: float = 0.0) -> dict:
    """Pads samples into a trainer batch; ids of unreadable ones go to "skipped"."""
    time.sleep(delay)
    good = [s for s in samples if isinstance(s, dict)]
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "ids": [s["id"] for s in good],
        "features": pad([s["features"] for s in good], batch_first=True) if good else torch.zeros(0, 0, DIM),
        "feature_lengths": torch.tensor([len(s["features"]) for s in good], dtype=torch.long),
        "tokens": pad([s["tokens"] for s in good], batch_first=True) if good else torch.zeros(0, 0, dtype=torch.long),
        "token_lengths": torch.tensor([len(s["tokens"]) for s in good], dtype=torch.long),
        "skipped": [s for s in samples if isinstance(s, str)],
    }


class ShardedBatchSampler:
    """Shuffles per (seed, epoch), cuts global batches, gives rank r the items r, r + world_size, ...
    of each: N ranks see together exactly the batches one process with the global size sees.
    Follows asr.data's sampler contract (set_epoch keeps a pending resume point of that epoch)."""

    def __init__(self, count: int, global_batch: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.count, self.global_batch, self.seed = count, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.batches_done, self.resume_at = 0, 0, 0

    def __len__(self) -> int:
        return self.count // self.global_batch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count)
        first, self.resume_at = self.resume_at, 0
        for number in range(first, len(self)):
            self.batches_done = number + 1
            batch = order[number * self.global_batch:(number + 1) * self.global_batch]
            yield batch[self.rank::self.world_size].tolist()

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.batches_done, self.resume_at = epoch, 0, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.seed = state["epoch"], state["seed"]
        self.batches_done = self.resume_at = state["batches_done"]


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best token per frame, repeats merged, blanks (0) removed."""
    hypotheses = []
    for path, length in zip(log_probs.argmax(-1).tolist(), lengths.tolist()):
        path = path[:length]
        hypotheses.append([t for i, t in enumerate(path) if t != 0 and (i == 0 or path[i - 1] != t)])
    return hypotheses


def make_model(dropout: float) -> TransformerEncoder:
    return TransformerEncoder(EncoderConfig(vocab_size=NUM_TOKENS, input_dim=DIM, d_model=32, num_heads=2,
                                            num_layers=1, ff_dim=64, dropout=dropout, subsampling=1))


def build_trainer(exp_dir, *, epochs: int = 2, global_batch: int = 8, dropout: float = 0.1,
                  checkpoint_every_steps: int = 0, log_every: int = 1, delay: float = 0.0,
                  count: int = 64, seed: int = 0, augment: bool = False, **config) -> Trainer:
    """The job's Trainer for this process's rank (per-rank batch = global_batch / world size);
    `augment` adds random noise bursts and SpecAugment masks to the training batches."""
    context = init_distributed()
    torch.manual_seed(seed)
    model = make_model(dropout)
    train_set = SyntheticSpeech(count, seed=seed)
    sampler = ShardedBatchSampler(count, global_batch, seed, context.rank, context.world_size)
    train_loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler,
                                               collate_fn=lambda s: collate(s, delay))
    valid_loader = torch.utils.data.DataLoader(SyntheticSpeech(16, seed=seed + 1), batch_size=8, collate_fn=collate)
    settings = dict(epochs=epochs, lr=3e-3, warmup_steps=4,
                    checkpoint_every_steps=checkpoint_every_steps, log_every=log_every)
    augmentation = torch.nn.Sequential(NoiseBursts(GlobalCMVN(torch.zeros(DIM), torch.ones(DIM)), min_frames=2,
                                                   max_frames=6), SpecAugment(freq_width=2)) if augment else None
    return Trainer(model, CTCLoss(), TrainerConfig(**{**settings, **config}), train_loader, valid_loader,
                   sampler, decode_fn=greedy_decode, augment=augmentation, exp_dir=exp_dir, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--checkpoint-every-steps", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to sleep in each collate (slows the job)")
    parser.add_argument("--augment", action="store_true", help="noise bursts and SpecAugment on training batches")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    trainer = build_trainer(args.exp_dir, epochs=args.epochs, global_batch=args.global_batch, dropout=args.dropout,
                            checkpoint_every_steps=args.checkpoint_every_steps, delay=args.delay,
                            augment=args.augment)
    trainer.fit(resume=True)
    cleanup()


if __name__ == "__main__":
    main()
