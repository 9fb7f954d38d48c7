"""Duration-bucketed batches under a padded-size budget, with exact resume and DDP sharding.

A batch is padded to its longest utterance, so its cost is `max duration x size`.
Utterances are sorted by duration and cut into `num_buckets` buckets of equal
count; every batch is drawn from one bucket and holds `floor(budget / longest
in bucket)` utterances, so the padded size stays within the budget while little
of it is padding. Each epoch shuffles utterances within their bucket and then
the order of the batches, both from a generator seeded with `(seed, epoch)`:
the same seed and epoch give the same batches on every run and every rank.

All the planning is numpy array work (one sort per epoch); the only Python loops
are over buckets and over the batches as they are yielded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields lists of utterance indices; pass it as a DataLoader's `batch_sampler`.

    durations: one per utterance, > 0, in any unit (seconds, or frames).
    max_seconds_per_batch: budget for `longest duration x batch size`, in the same
        unit. An utterance longer than the budget cannot be batched and is an error
        (filter the manifest first).
    num_buckets: number of equal-count duration buckets (fewer if there are fewer
        utterances).
    shuffle: shuffle within buckets and the batch order each epoch; if False,
        batches go from the shortest to the longest utterances.
    drop_last: drop each bucket's final, smaller batch, and with world_size > 1
        drop the batches left over after an equal split. Otherwise every utterance
        is in exactly one batch per epoch and, with world_size > 1, the batch list
        is padded by repeating its first batches until it splits equally (a few
        utterances are then seen twice in that epoch, as with torch's
        DistributedSampler).
    rank, world_size: with world_size > 1, rank r takes batches r, r + world_size,
        ... of the shared epoch plan: shards are disjoint and equally long, so all
        ranks take the same number of optimizer steps.

    Call `set_epoch(e)` before each epoch (as with DistributedSampler); iterating
    again without it repeats the same epoch. `state_dict()` / `load_state_dict()`
    resume mid-epoch exactly (see `state_dict` for DataLoader prefetching).
    """

    def __init__(self, durations: Sequence[float] | np.ndarray, max_seconds_per_batch: float,
                 num_buckets: int = 10, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        durations = np.asarray(durations, dtype=np.float64)
        if durations.ndim != 1:
            raise ValueError(f"durations must be one-dimensional, got shape {durations.shape}")
        if not np.all(np.isfinite(durations) & (durations > 0)):
            raise ValueError("durations must be positive and finite")
        too_long = durations > max_seconds_per_batch
        if too_long.any():
            raise ValueError(f"{int(too_long.sum())} utterance(s) are longer than max_seconds_per_batch="
                             f"{max_seconds_per_batch} (longest {durations.max()}); filter them out first")
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be at least 1, got {num_buckets}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._batches_done = 0  # batches of this epoch handed out (or restored)
        self._resume_at = 0  # where the next iteration starts; set by load_state_dict

        count = len(durations)
        self._by_duration = np.argsort(durations, kind="stable")
        # Equal-count buckets over the sorted order: bucket b is positions edges[b]:edges[b + 1].
        self._edges = np.linspace(0, count, min(num_buckets, count) + 1).round().astype(np.int64)
        self._bucket_of_position = np.repeat(np.arange(len(self._edges) - 1), np.diff(self._edges))
        longest = durations[self._by_duration[self._edges[1:] - 1]]
        sizes = np.floor(max_seconds_per_batch / longest).astype(np.int64)
        sizes -= sizes * longest > max_seconds_per_batch  # guard against the division rounding up
        self._batch_size = sizes
        self._num_batches = len(self._plan(0)[1])

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This rank's batches for an epoch: (utterance indices in batch order, batch starts, batch sizes)."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            # Bucket id plus a uniform [0, 1) key: sorting keeps buckets contiguous, shuffled inside.
            order = self._by_duration[np.argsort(self._bucket_of_position + rng.random(len(self._by_duration)))]
        else:
            order = self._by_duration
        starts, sizes = [], []
        for begin, end, size in zip(self._edges[:-1], self._edges[1:], self._batch_size):
            bucket_starts = np.arange(begin, end, size)
            bucket_sizes = np.minimum(size, end - bucket_starts)
            if self.drop_last:
                bucket_starts, bucket_sizes = bucket_starts[bucket_sizes == size], bucket_sizes[bucket_sizes == size]
            starts.append(bucket_starts)
            sizes.append(bucket_sizes)
        starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        sizes = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)

        batches = rng.permutation(len(starts)) if self.shuffle else np.arange(len(starts))
        if self.world_size > 1:
            if self.drop_last:
                batches = batches[:len(batches) - len(batches) % self.world_size]
            else:
                padded = -(-len(batches) // self.world_size) * self.world_size
                batches = np.resize(batches, padded)  # np.resize repeats from the start
            batches = batches[self.rank::self.world_size]
        return order, starts[batches], sizes[batches]

    def __iter__(self) -> Iterator[list[int]]:
        order, starts, sizes = self._plan(self.epoch)
        first, self._resume_at = self._resume_at, 0
        for number in range(first, len(starts)):
            self._batches_done = number + 1
            yield order[starts[number]:starts[number] + sizes[number]].tolist()

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same every epoch); a resumed epoch yields fewer."""
        return self._num_batches

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch to iterate. Setting the epoch already set keeps a pending resume point,
        so `load_state_dict(s); for e in range(s["epoch"], n): set_epoch(e); ...` resumes exactly."""
        if epoch != self.epoch:
            self.epoch, self._batches_done, self._resume_at = epoch, 0, 0

    def state_dict(self, batches_done: int | None = None) -> dict[str, int]:
        """{epoch, batches_done, seed}: enough to continue with the next batch of this epoch.

        batches_done defaults to the batches this sampler has yielded in the epoch,
        which is exact when iterating it directly or through a DataLoader with
        num_workers=0. A DataLoader with workers draws batches ahead of the
        training loop (prefetching), so the trainer should pass the number of
        batches it has consumed in this epoch instead.
        """
        done = self._batches_done if batches_done is None else batches_done
        return {"epoch": self.epoch, "batches_done": done, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restores a `state_dict()`: the next iteration yields batch `batches_done` of `epoch` onward."""
        if not 0 <= state["batches_done"] <= self._num_batches:
            raise ValueError(f"batches_done={state['batches_done']} is outside [0, {self._num_batches}] "
                             "(was the state saved for other data or another batch budget?)")
        self.seed, self.epoch = state["seed"], state["epoch"]
        self._batches_done = self._resume_at = state["batches_done"]
