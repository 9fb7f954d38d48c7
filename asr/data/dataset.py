"""Map-style speech dataset (audio -> features, text -> tokens) and its padding collate.

The loader, featurizer and tokenizer are passed in as callables (for example
`functools.partial(asr.audio.load_audio, sample_rate=16000)`, an
`asr.features.Fbank` and `tokenizer.encode`), so this module depends on none of
them. With DataLoader workers they must be picklable when the start method is
not `fork` (module-level functions, partials and objects are; lambdas are not).

An utterance whose audio cannot be loaded (`load` raises ValueError, which
includes `asr.audio.AudioError`, or OSError) is skipped rather than ending an
epoch: the dataset logs a warning naming the file and returns a `Skipped`
record instead of a sample. Because DataLoader workers are separate processes,
a counter on the dataset would only count in the worker that hit the failure;
so the record travels with the data instead: `collate` drops it and lists it
in the batch's `skipped`, where the training loop (main process) can count and
report it. `SpeechDataset.failures` also collects the records in whichever
process did the loading, which is the main process when num_workers=0.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import torch

from .manifest import Utterance

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An utterance left out of its batch: its id, audio path and the loading error."""

    id: str
    audio: str
    error: str


class SpeechDataset(torch.utils.data.Dataset):
    """utterances[i] -> {"id", "features": float [T, F], "tokens": int64 [U]}, or `Skipped`.

    load: audio path -> waveform tensor; called as load(path, speed=f) for an utterance whose
    `speed` is not 1 and with band_limit=r for a band-limited read (`asr.audio.load_audio`
    takes both).
    featurize: waveform -> features [T, F].
    encode: transcript -> token ids.
    target_graph: transcript -> an acceptor of all its token spellings, or None (e.g.
    `Tokenizer.target_graph`); the sample then has a "target_graph" too.
    band_limits: with probability `band_limit_p` a read is band-limited to one of these sample
    rates (drawn uniformly, from torch's RNG), as if the recording were narrowband: a model
    trained so keeps its accuracy on 8 kHz audio.
    Only errors from `load` are treated as bad data; errors from `featurize` or
    `encode` are bugs or configuration problems and propagate.
    cache: keep each sample (each band-limited variant too) after its first read, for small
    corpora read many epochs over (deterministic featurizers only; augmentation belongs after,
    e.g. the Trainer's `augment`). The cache lives in the process that reads: the main one, or
    each persistent worker.
    transform: features -> features, applied to every read after the cache, for augmentation
    that changes an example's length (e.g. `asr.features.SilencePadding`).
    """

    def __init__(self, utterances: Sequence[Utterance], load: Callable[[str], torch.Tensor],
                 featurize: Callable[[torch.Tensor], torch.Tensor], encode: Callable[[str], list[int]],
                 cache: bool = False, band_limits: Sequence[int] = (), band_limit_p: float = 0.0,
                 target_graph: Callable[[str], object | None] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if not 0.0 <= band_limit_p <= 1.0 or (band_limit_p and not band_limits):
            raise ValueError(f"band_limit_p must lie in [0, 1] and needs band_limits, got {band_limit_p} "
                             f"with {list(band_limits)}")
        self.utterances = utterances
        self.load, self.featurize, self.encode, self.target_graph = load, featurize, encode, target_graph
        self.transform = transform
        self.band_limits, self.band_limit_p = [int(rate) for rate in band_limits], band_limit_p
        self.failures: list[Skipped] = []
        self._cache: dict[tuple[int, int | None], dict | Skipped] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> dict | Skipped:
        band_limit = None
        if self.band_limit_p and float(torch.rand(())) < self.band_limit_p:
            band_limit = self.band_limits[int(torch.randint(len(self.band_limits), ()))]
        if self._cache is None:
            sample = self._read(index, band_limit)
        else:
            key = (index, band_limit)
            if key not in self._cache:
                self._cache[key] = self._read(index, band_limit)
            sample = self._cache[key]
        if self.transform is None or isinstance(sample, Skipped):
            return sample
        return {**sample, "features": self.transform(sample["features"])}

    def _read(self, index: int, band_limit: int | None) -> dict | Skipped:
        utterance = self.utterances[index]
        options = {**({"speed": utterance.speed} if utterance.speed != 1.0 else {}),
                   **({"band_limit": band_limit} if band_limit is not None else {})}
        try:
            waveform = self.load(utterance.audio, **options)
        except (ValueError, OSError) as e:
            skipped = Skipped(utterance.id, utterance.audio, f"{type(e).__name__}: {e}")
            logger.warning("skipping utterance %s: cannot load %s: %s", utterance.id, utterance.audio, skipped.error)
            self.failures.append(skipped)
            return skipped
        sample = {"id": utterance.id, "features": self.featurize(waveform),
                  "tokens": torch.as_tensor(self.encode(utterance.text), dtype=torch.long)}
        target = self.target_graph(utterance.text) if self.target_graph is not None else None
        return sample if target is None else {**sample, "target_graph": target}


def collate(samples: Sequence[dict | Skipped]) -> dict:
    """Pads a list of `SpeechDataset` samples into a batch, setting skipped ones aside.

    Returns {"ids": [B], "features": float [B, T, F] (zero-padded),
    "feature_lengths": int64 [B], "tokens": int64 [B, U] (zero-padded),
    "token_lengths": int64 [B], "skipped": [Skipped]}, plus "target_graphs" [B] when the
    samples have target graphs. If every sample was skipped, B = 0 (features of shape
    [0, 0, 0]); the training loop should step over it.
    """
    kept = [s for s in samples if not isinstance(s, Skipped)]
    skipped = [s for s in samples if isinstance(s, Skipped)]
    if not kept:
        empty = torch.zeros(0, dtype=torch.long)
        return {"ids": [], "features": torch.zeros(0, 0, 0), "feature_lengths": empty,
                "tokens": torch.zeros(0, 0, dtype=torch.long), "token_lengths": empty, "skipped": skipped}
    features = [s["features"] for s in kept]
    tokens = [s["tokens"] for s in kept]
    batch = {
        "ids": [s["id"] for s in kept],
        "features": torch.nn.utils.rnn.pad_sequence(features, batch_first=True, padding_value=0.0),
        "feature_lengths": torch.tensor([len(f) for f in features], dtype=torch.long),
        "tokens": torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=0),
        "token_lengths": torch.tensor([len(t) for t in tokens], dtype=torch.long),
        "skipped": skipped,
    }
    if "target_graph" in kept[0]:
        batch["target_graphs"] = [s["target_graph"] for s in kept]
    return batch
