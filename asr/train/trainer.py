"""The training loop: AdamW with a warmup schedule, gradient accumulation and clipping, mixed
precision on CUDA, per-epoch validation (loss and error rate), TensorBoard scalars, atomic
checkpoints with exact mid-epoch resume, and DDP when launched through torchrun.

Exact resume: every epoch starts by re-seeding all RNGs from (seed, epoch, rank), and a
mid-epoch checkpoint stores the RNG states and the batch sampler's position, taken at an
optimizer-step boundary. Resuming replays the epoch start (seeding, `set_epoch`, creating the
loader iterator, which draws the worker seed) and then restores the saved RNG states, so the
remaining batches, dropout masks and updates are those of an uninterrupted run.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import scoring
from . import distributed
from .checkpoint import average_checkpoints, load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from .lr_schedule import cosine_schedule, noam_schedule

logger = logging.getLogger("asr.train")

LATEST_CHECKPOINT = "checkpoint-latest.pt"
_EPOCH_CHECKPOINT = re.compile(r"epoch-(\d+)\.pt")


@dataclasses.dataclass
class TrainerConfig:
    """Optimization and bookkeeping settings; saved in every checkpoint.

    lr is the peak learning rate, reached after `warmup_epochs` epochs (a warmup sized to the
    data: a fixed step count is over in a moment on a big corpus and lasts dozens of epochs on
    a small one) or, when given, `warmup_steps` optimizer steps. `accumulate` micro-batches
    make one optimizer step. Only the last `keep_last` epoch checkpoints are kept (0: all);
    the model `fit` returns with holds the average of the last `average_last` epochs' weights
    (1: the last epoch's), which decodes better than any single epoch of a noisy small-data run. amp: 'auto' (bf16 autocast on CUDA where supported,
    else fp16 with a GradScaler; off on CPU), 'bf16', 'fp16' or 'off'. checkpoint_every_steps:
    also write `checkpoint-latest.pt` every that many optimizer steps (0: epoch ends only).
    grad_clip: max global gradient norm (0: no clipping).
    """

    epochs: int | None = None  # None: set by whoever knows the data (asr.recipe: by hours of audio)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 2.0
    warmup_steps: int | None = None
    schedule: str = "noam"
    grad_clip: float = 5.0
    accumulate: int = 1
    amp: str = "auto"
    checkpoint_every_steps: int = 0
    log_every: int = 50
    keep_last: int = 5
    average_last: int = 1

    def __post_init__(self):
        if self.schedule not in ("noam", "cosine"):
            raise ValueError(f"schedule must be 'noam' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {self.amp!r}")
        for name in ("accumulate", "log_every", "average_last", *(("epochs",) if self.epochs is not None else ())):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps is not None and self.warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1 (or None: use warmup_epochs), got {self.warmup_steps}")
        if self.checkpoint_every_steps < 0 or self.grad_clip < 0 or self.warmup_epochs < 0 or self.keep_last < 0:
            raise ValueError("checkpoint_every_steps, grad_clip, warmup_epochs and keep_last must be >= 0")
        if self.keep_last and self.keep_last < self.average_last:
            raise ValueError(f"keep_last ({self.keep_last}) must be 0 (keep all) or at least average_last "
                             f"({self.average_last}): the averaged epochs' checkpoints are needed")


class _ModelWithLoss(nn.Module):
    """Model and loss as one module, so DDP also averages the gradients of loss parameters
    (e.g. learned transitions). The model runs under autocast; the graph loss in float32.
    A loss with `views` = n > 1 (CR-CTC) gets n copies of each training batch, stacked along
    the batch and augmented independently."""

    def __init__(self, model: nn.Module, loss_fn: Callable, amp_dtype: torch.dtype | None,
                 augment: nn.Module | None = None):
        super().__init__()
        self.model, self.loss_fn, self.amp_dtype, self.augment = model, loss_fn, amp_dtype, augment

    def forward(self, features, feature_lengths, tokens, token_lengths):
        views = getattr(self.loss_fn, "views", 1) if self.training else 1
        if views > 1:
            features, feature_lengths = features.repeat(views, 1, 1), feature_lengths.repeat(views)
            tokens = tokens * views if isinstance(tokens, list) else tokens.repeat(views, 1)
            token_lengths = token_lengths.repeat(views)
        if self.augment is not None and self.training:
            features = self.augment(features)
        with torch.autocast(features.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            log_probs, out_lengths = self.model(features, feature_lengths)
        log_probs = log_probs.float()
        return self.loss_fn(log_probs, tokens, out_lengths, token_lengths), log_probs, out_lengths


class Trainer:
    """Trains `model` (features [B, T, F], lengths [B] -> log_probs [B, T', V], out_lengths)
    with `loss_fn(log_probs, tokens, out_lengths, token_lengths)` (a mean over the batch).

    Loaders yield dicts with "features", "feature_lengths", "tokens", "token_lengths", "ids"
    and optionally "target_graphs" (acceptors of alternative spellings, given to the loss in
    place of the tokens) and "skipped" (ids, or objects with `.id`, of utterances the dataset could not
    read; they are counted and training goes on; a batch with no utterance left is stepped over).
    sampler: the train loader's batch sampler, with `set_epoch(e)`, `state_dict()` ->
    {epoch, batches_done, seed} and `load_state_dict()`, sharded by rank under DDP; it makes
    mid-epoch resume exact and cheap. Without one, resume skips the finished batches by reading
    them again, which is exact only if the loader's order is a function of the epoch seeding.
    decode_fn(log_probs, out_lengths) -> token lists, for the validation error rate against the
    reference tokens; with detokenize(tokens) -> text it is a word error rate (valid/wer),
    otherwise a token error rate (valid/ter).
    augment: applied to each training batch's padded features [B, T, F] on the device (e.g.
    `asr.features.SpecAugment`); validation sees the features as they are.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, config: TrainerConfig, train_loader: Iterable,
                 valid_loader: Iterable | None = None, sampler=None,
                 decode_fn: Callable[[torch.Tensor, torch.Tensor], list[list[int]]] | None = None,
                 detokenize: Callable[[list[int]], str] | None = None, device: str | torch.device | None = None,
                 augment: nn.Module | None = None, *, exp_dir: str | Path, seed: int = 0):
        if config.epochs is None:
            raise ValueError("TrainerConfig.epochs is not set")
        self.config, self.seed = config, seed
        self.context = distributed.current_context()
        self.device = torch.device(device) if device is not None else self.context.device
        self.train_loader, self.valid_loader, self.sampler = train_loader, valid_loader, sampler
        self.decode_fn, self.detokenize = decode_fn, detokenize
        self.exp_dir = Path(exp_dir)
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.task = _ModelWithLoss(model, loss_fn, self.amp_dtype, augment).to(self.device)
        self.model = model
        self.ddp_task = distributed.wrap_model(self.task, self.context)
        self.optimizer = torch.optim.AdamW(_parameter_groups(model, loss_fn, config.weight_decay), lr=config.lr)
        self.scheduler = self._make_scheduler()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.global_step = 0
        self.skipped_utterances = 0
        self.writer = None
        self._seconds_before = 0.0  # time in `fit` until its current call, over every run of this experiment
        self._started: float | None = None  # when the current `fit` call began

    @property
    def train_seconds(self) -> float:
        """Wall-clock seconds spent in `fit` on this experiment, over every run that resumed it."""
        return self._seconds_before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def _steps_per_epoch(self) -> int:
        try:
            return math.ceil(len(self.train_loader) / self.config.accumulate)
        except TypeError as e:
            raise ValueError("warmup_epochs and the cosine schedule need a train loader with a length; "
                             "give warmup_steps and use the noam schedule") from e

    def _warmup_steps(self) -> int:
        if self.config.warmup_steps is not None:
            return self.config.warmup_steps
        return max(1, round(self.config.warmup_epochs * self._steps_per_epoch()))

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        warmup = self._warmup_steps()
        if self.config.schedule == "noam":
            return noam_schedule(self.optimizer, warmup, peak_lr=self.config.lr)
        total = self._steps_per_epoch() * self.config.epochs
        if self.config.warmup_steps is None and warmup >= total // 2:
            # A run shorter than its warmup in epochs (a quick trial): warm up for half of it.
            logger.warning("warmup of %g epochs is not shorter than half of %d epochs: warming up for %d of %d steps",
                           self.config.warmup_epochs, self.config.epochs, max(1, total // 2), total)
            warmup = max(1, total // 2)
        return cosine_schedule(self.optimizer, warmup, total)

    # ---------------------------------------------------------------- fit

    def fit(self, resume: bool = True) -> dict[str, float]:
        """Trains up to `config.epochs` epochs, resuming from the newest checkpoint in exp_dir if
        `resume` (and one exists). Returns the last validation metrics ({} without a valid loader)."""
        if self.context.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.exp_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
        start_epoch, start_batch, saved_rng = 1, 0, None
        self._started = time.perf_counter()
        checkpoint = self._newest_checkpoint() if resume else None
        metrics: dict[str, float] = {}
        if checkpoint is not None:
            start_epoch, start_batch, saved_rng = self._restore(checkpoint)
            metrics = checkpoint["metrics"]
        try:
            with logging_redirect_tqdm():  # log lines go above the progress bar, not through it
                for epoch in range(start_epoch, self.config.epochs + 1):
                    self._train_epoch(epoch, start_batch, saved_rng)
                    start_batch, saved_rng = 0, None
                    metrics = self.validate(epoch)
                    self._save(self.exp_dir / f"epoch-{epoch}.pt", epoch, None, metrics)
                    self._remove_old_checkpoints(epoch)
                    if self.context.is_main:
                        logger.info("epoch %d done: step %d, %s, %d utterances skipped so far", epoch, self.global_step,
                                    ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no validation",
                                    self.skipped_utterances)
                if self.config.average_last > 1:
                    metrics = self._average_last_epochs()
        finally:
            self._seconds_before, self._started = self.train_seconds, None
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        return metrics

    def _train_epoch(self, epoch: int, start_batch: int, saved_rng: dict | None) -> None:
        """One epoch from batch `start_batch` (0, or a mid-epoch checkpoint's position)."""
        seed_everything(int(np.random.SeedSequence([self.seed, epoch, self.context.rank]).generate_state(1)[0]))
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        batches = iter(self.train_loader)
        if self.sampler is None and start_batch:
            logger.info("reading past the %d batches already trained in epoch %d", start_batch, epoch)
            collections.deque(itertools.islice(batches, start_batch), maxlen=0)
        if saved_rng is not None:
            set_rng_state(saved_rng)
        try:
            num_batches = len(self.train_loader)
        except TypeError:
            num_batches = None
        self.task.train()
        progress = tqdm(total=num_batches, initial=start_batch, desc=f"epoch {epoch}", dynamic_ncols=True,
                        disable=None if self.context.is_main else True)
        pending, loss_sum, loss_count = 0, torch.zeros((), device=self.device), 0
        for batch_number, batch in enumerate(batches, start=start_batch + 1):
            progress.update()
            if not self._usable(batch, epoch):
                continue
            pending += 1
            sync = pending == self.config.accumulate or batch_number == num_batches
            with self.ddp_task.no_sync() if not sync and self.context.world_size > 1 else nullcontext():
                loss, _, _ = self.ddp_task(*self._inputs(batch))
                self.scaler.scale(loss / self.config.accumulate).backward()
            loss_sum += loss.detach()
            loss_count += 1
            if not sync:
                continue
            grad_norm = self._optimizer_step(pending, synchronized=True)
            pending = 0
            if self.global_step % self.config.log_every == 0:
                self._log_train(loss_sum / loss_count, grad_norm, progress)
                loss_sum.zero_()
                loss_count = 0
            if self.config.checkpoint_every_steps and self.global_step % self.config.checkpoint_every_steps == 0:
                self._save(self.exp_dir / LATEST_CHECKPOINT, epoch, batch_number)
        if pending:  # the epoch's length was unknown, or its last batches had nothing left to train on
            self._optimizer_step(pending, synchronized=False)
        progress.close()

    def _usable(self, batch: dict, epoch: int) -> bool:
        """Counts and logs skipped utterances; False for a batch left empty (on any rank, so
        that all ranks step over it together)."""
        skipped = [str(getattr(s, "id", s)) for s in batch.get("skipped", ())]
        if skipped:
            self.skipped_utterances += len(skipped)
            logger.warning("epoch %d: skipped %d unreadable utterance(s): %s", epoch, len(skipped),
                           ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
        usable = batch["features"].shape[0] > 0
        if self.context.world_size > 1:
            usable = bool(distributed.all_reduce(torch.tensor(float(usable), device=self.device), "min"))
        if not usable:
            logger.warning("epoch %d: a batch with no readable utterance (on some rank) was stepped over", epoch)
        return usable

    def _inputs(self, batch: dict) -> tuple:
        """features, feature_lengths, targets (the batch's target graphs when it has them, else
        its padded tokens) and token_lengths, on the device."""
        features, lengths, tokens, token_lengths = (batch[k].to(self.device, non_blocking=True)
                                                    for k in ("features", "feature_lengths", "tokens", "token_lengths"))
        if "target_graphs" in batch:
            tokens = [graph.to(self.device) for graph in batch["target_graphs"]]
        return features, lengths, tokens, token_lengths

    def _optimizer_step(self, micro_batches: int, synchronized: bool) -> torch.Tensor:
        """Unscales, averages over `micro_batches`, clips, and steps the optimizer and the schedule
        unless the gradients are not finite. Returns the gradient norm before clipping."""
        parameters = [p for p in self.task.parameters() if p.grad is not None]
        self.scaler.unscale_(self.optimizer)
        if not synchronized and self.context.world_size > 1:  # gradients accumulated under no_sync
            for p in parameters:
                distributed.all_reduce(p.grad, "mean")
        if micro_batches != self.config.accumulate:  # a short final group: average over what it had
            for p in parameters:
                p.grad.mul_(self.config.accumulate / micro_batches)
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip or math.inf)
        if self.scaler.is_enabled():
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skipped on inf/NaN gradients, which also lowers the scale
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale
        else:
            stepped = bool(torch.isfinite(grad_norm))
            if stepped:
                self.optimizer.step()
        if stepped:
            self.scheduler.step()
        else:  # routine while fp16 loss scaling calibrates; a problem otherwise
            logger.log(logging.INFO if self.scaler.is_enabled() else logging.WARNING,
                       "step %d: non-finite gradients, update skipped", self.global_step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        return grad_norm

    def _log_train(self, loss: torch.Tensor, grad_norm: torch.Tensor, progress: tqdm) -> None:
        """Train loss averaged since the last log and over ranks; written by rank 0."""
        loss = float(distributed.all_reduce(loss.detach().float().clone(), "mean"))
        if not self.context.is_main:
            return
        lr = self.scheduler.get_last_lr()[0]
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        logger.info("step %d: loss %.4f, lr %.3e, grad norm %.3f", self.global_step, loss, lr, float(grad_norm))
        self.writer.add_scalar("train/loss", loss, self.global_step)
        self.writer.add_scalar("train/lr", lr, self.global_step)
        self.writer.add_scalar("train/grad_norm", float(grad_norm), self.global_step)

    # ---------------------------------------------------------------- validation

    @torch.no_grad()
    def validate(self, epoch: int | None = None) -> dict[str, float]:
        """Mean per-utterance validation loss and, with a decode_fn, the error rate, summed over
        ranks (each rank may validate a shard, or all the same data: the ratios agree)."""
        if self.valid_loader is None:
            return {}
        self.task.eval()
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss sum, utterances, errors, ref units
        skipped = 0
        for batch in self.valid_loader:
            size = batch["features"].shape[0]
            skipped += len(batch.get("skipped", ()))
            if size == 0:
                continue
            loss, log_probs, out_lengths = self.task(*self._inputs(batch))
            totals[0] += float(loss) * size
            totals[1] += size
            if self.decode_fn is not None:
                errors, units = self._errors(batch, self.decode_fn(log_probs, out_lengths))
                totals[2] += errors
                totals[3] += units
        self.task.train()
        if skipped:
            logger.warning("validation: skipped %d unreadable utterance(s)", skipped)
        loss_sum, utterances, errors, units = distributed.all_reduce(totals).tolist()
        metrics = {"valid/loss": loss_sum / max(utterances, 1)}
        if self.decode_fn is not None:
            metrics["valid/wer" if self.detokenize else "valid/ter"] = errors / max(units, 1)
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, self.global_step)
        if epoch is not None and self.context.is_main:
            logger.info("epoch %d validation: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    def _errors(self, batch: dict, hypotheses: list[list[int]]) -> tuple[int, int]:
        """Edit-distance errors and reference length (words with detokenize, else tokens)."""
        tokens, lengths = batch["tokens"], batch["token_lengths"].tolist()
        references = [tokens[i, :n].tolist() for i, n in enumerate(lengths)]
        as_text = self.detokenize or (lambda ids: " ".join(map(str, ids)))
        result = scoring.score({str(i): as_text(r) for i, r in enumerate(references)},
                               {str(i): as_text(list(h)) for i, h in enumerate(hypotheses)})
        return result.words.errors, result.words.reference_units

    # ---------------------------------------------------------------- checkpoints

    def _save(self, path: Path, epoch: int, batches_done: int | None, metrics: dict | None = None) -> None:
        """Writes a checkpoint (rank 0); batches_done=None marks the end of the epoch. All ranks
        take part, as every rank's RNG state is gathered."""
        rng = distributed.all_gather_objects(rng_state())
        if not self.context.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "loss_fn": self.task.loss_fn.state_dict() if isinstance(self.task.loss_fn, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "epoch": epoch,
            "epoch_complete": batches_done is None,
            "batches_done": batches_done or 0,
            "global_step": self.global_step,
            "skipped_utterances": self.skipped_utterances,
            "train_seconds": self.train_seconds,
            "trainer_config": dataclasses.asdict(self.config),
            "world_size": self.context.world_size,
            "metrics": metrics or {},
        }
        if self.sampler is not None and batches_done is not None:
            # The trainer's count, not the sampler's: a DataLoader with workers draws batches ahead.
            state["sampler"] = {**self.sampler.state_dict(), "batches_done": batches_done}
        config = getattr(self.model, "config", None)
        if hasattr(config, "to_dict"):
            state["model_config"] = config.to_dict()
        save_checkpoint(path, state)
        logger.info("saved %s (epoch %d, step %d)", path, epoch, self.global_step)

    def _epoch_checkpoints(self) -> dict[int, Path]:
        """Epoch number -> its end-of-epoch checkpoint in exp_dir."""
        return {int(m.group(1)): p for p in self.exp_dir.glob("epoch-*.pt") if (m := _EPOCH_CHECKPOINT.fullmatch(p.name))}

    def _remove_old_checkpoints(self, epoch: int) -> None:
        """Deletes epoch checkpoints older than the last `keep_last` (rank 0)."""
        if not self.config.keep_last or not self.context.is_main:
            return
        for number, path in self._epoch_checkpoints().items():
            if number <= epoch - self.config.keep_last:
                path.unlink(missing_ok=True)

    def _average_last_epochs(self) -> dict[str, float]:
        """Loads the average of the last `average_last` epochs' weights into the model (every
        rank reads the same files, once rank 0 has written them); returns its validation metrics."""
        distributed.barrier()
        last = self.config.epochs
        epochs = list(range(max(1, last - self.config.average_last + 1), last + 1))
        saved = self._epoch_checkpoints()
        missing = [e for e in epochs if e not in saved]
        if missing:
            raise FileNotFoundError(f"{self.exp_dir}: cannot average epochs {epochs[0]}-{last}: no checkpoint for "
                                    f"epoch(s) {missing} (were they removed? keep_last must be >= average_last)")
        self.model.load_state_dict(average_checkpoints([saved[e] for e in epochs]))
        metrics = self.validate()
        if self.context.is_main:
            logger.info("model = average of epochs %d-%d: %s", epochs[0], last,
                        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no validation")
        return metrics

    def _newest_checkpoint(self) -> dict | None:
        """The checkpoint in exp_dir with the most optimizer steps (an epoch end wins a tie)."""
        epochs = self._epoch_checkpoints()
        candidates = [epochs[max(epochs)]] if epochs else []
        if (self.exp_dir / LATEST_CHECKPOINT).exists():
            candidates.append(self.exp_dir / LATEST_CHECKPOINT)
        loaded = [load_checkpoint(p, map_location="cpu", mmap=True) for p in candidates]
        if not loaded:
            return None
        index = max(range(len(loaded)), key=lambda i: (loaded[i]["global_step"], loaded[i]["epoch_complete"]))
        logger.info("resuming from %s", candidates[index])
        return loaded[index]

    def _restore(self, checkpoint: dict) -> tuple[int, int, dict | None]:
        """Loads the training state; returns (epoch to run, batches already done in it, RNG state
        to restore once that epoch's loader iterator exists, or None at an epoch start)."""
        changed = {k: (v, getattr(self.config, k)) for k, v in checkpoint["trainer_config"].items()
                   if getattr(self.config, k, v) != v}
        if changed:
            logger.warning("trainer config differs from the checkpoint's (saved, now): %s", changed)
        self.model.load_state_dict(checkpoint["model"])
        if isinstance(self.task.loss_fn, nn.Module):
            self.task.loss_fn.load_state_dict(checkpoint["loss_fn"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.global_step = checkpoint["global_step"]
        self.skipped_utterances = checkpoint["skipped_utterances"]
        self._seconds_before = checkpoint.get("train_seconds", 0.0)
        if checkpoint["epoch_complete"]:
            return checkpoint["epoch"] + 1, 0, None
        if checkpoint["world_size"] != self.context.world_size:
            logger.warning("checkpoint was written by %d ranks, now %d: the resumed epoch will not replay exactly",
                           checkpoint["world_size"], self.context.world_size)
        if self.sampler is not None:
            self.sampler.load_state_dict(checkpoint["sampler"])
        rng = checkpoint["rng"]
        return checkpoint["epoch"], checkpoint["batches_done"], rng[self.context.rank % len(rng)]


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an `amp` setting on `device`, None for full precision."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _parameter_groups(model: nn.Module, loss_fn: Callable, weight_decay: float) -> list[dict]:
    """Weight decay on the model's matrices and kernels only: not on biases, norms, or loss
    parameters (transition scores), which decay would pull towards 0 for no benefit."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    if isinstance(loss_fn, nn.Module):
        no_decay += [p for p in loss_fn.parameters() if p.requires_grad]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
