"""How a CTC recognizer is trained: the typed settings tree (`TrainingConfig`, and
`RecognizerConfig` for `asr train` and the open-vocabulary recipes), its defaults, and the
pipeline from manifests to a model directory.

A config is checked as a whole when it is built (each node's `__post_init__`, the loss by
name), before any data is read, and written to the experiment folder as config.json; every
default lives in exactly one dataclass field.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch

from graphs.io import write_atomic

from . import config as settings
from .audio import load_audio
from .data import BucketBatchSampler, SpeechDataset, Utterance, collate, read_manifest, speed_perturbed
from .decoding import BeamOptions, Topology
from .features import (
    Fbank,
    GlobalCMVN,
    NoiseBursts,
    NoiseOptions,
    SilenceOptions,
    SilencePadding,
    SpecAugment,
    SpecAugmentOptions,
)
from .lang import build_hlg
from .lm import UNK, estimate_kneser_ney, read_arpa, write_arpa
from .losses import check_loss, loss_topology, make_loss
from .model import EncoderConfig, TransformerEncoder
from .model_dir import Featurizer, ModelDir, save_model_dir
from .scoring import score
from .tokenizer import BPETokenizer, CharTokenizer, PhoneTokenizer, Tokenizer, read_lexicon
from .train import Trainer, TrainerConfig, barrier, current_context, leave_together
from .transcribe import Recognizer

log = logging.getLogger("asr.training")

CONFIG_FILE = "config.json"
CACHE_LIMIT_BYTES = 4 << 30  # training features cached in memory by default when they take less
AUDIO_HOURS_TRAINED = 60.0  # default training length: epochs of this much audio in all...
EPOCH_RANGE = (10, 60)  # ...but at least 10 and at most 60 epochs


def read_settings(path: str | Path) -> dict:
    """A JSON file of settings (an object); errors name the file."""
    try:
        changes = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(changes, dict):
        raise ValueError(f"{path}: expected a JSON object of settings")
    return changes


def epochs_for(hours: float) -> int:
    """Default number of epochs for `hours` of training audio per epoch (speed-perturbed copies
    included): about `AUDIO_HOURS_TRAINED` hours in all, within `EPOCH_RANGE` (33 for AN4's
    1.8 hours, 10 for 100 hours and more)."""
    low, high = EPOCH_RANGE
    return int(min(high, max(low, round(AUDIO_HOURS_TRAINED / max(hours, 1e-9)))))


def fit_cmvn(utterances: Sequence[Utterance], sample_rate: int, fbank: Fbank) -> GlobalCMVN:
    return GlobalCMVN.fit(fbank(load_audio(u.audio, sample_rate)) for u in utterances)


def loader(utterances, sample_rate: int, featurize: Callable, tokenizer: Tokenizer, max_seconds: float,
           shuffle: bool, seed: int, cache: bool = False, band_limits: Sequence[int] = (), band_limit_p: float = 0.0,
           transform: Callable | None = None) -> tuple[torch.utils.data.DataLoader, BucketBatchSampler]:
    """Duration-bucketed batches of at most `max_seconds` of audio in all ranks together (under
    torchrun each rank takes its share of every global batch: batches of `max_seconds` /
    world size, or the longest utterance, dealt out in turn); `cache` keeps features in
    memory; `band_limits`/`band_limit_p` band-limit some reads, `transform` changes every
    read's features (`SpeechDataset`)."""
    dataset = SpeechDataset(list(utterances), partial(load_audio, sample_rate=sample_rate), featurize,
                            tokenizer.encode, cache=cache, band_limits=band_limits, band_limit_p=band_limit_p,
                            target_graph=tokenizer.target_graph, transform=transform)
    context = current_context()
    durations = [u.duration for u in utterances]
    per_rank = max(max_seconds / context.world_size, max(durations, default=0.0))
    sampler = BucketBatchSampler(durations, per_rank, shuffle=shuffle, seed=seed, rank=context.rank,
                                 world_size=context.world_size)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate), sampler


@dataclasses.dataclass
class TrainingConfig:
    """How to train a CTC encoder: `model` (its sizes; the vocabulary comes from the tokenizer),
    `train` (optimization; `epochs` None follows the amount of audio, `epochs_for`), `loss`
    (`asr.losses.make_loss`: "ctc", "crctc", "mmi", "asg", "wordpiece", a user's
    "file.py:factory", or {"name": ..., **options}), `noise` and `augment`
    (`NoiseBursts` and SpecAugment; None: off), `silence` (`SilencePadding`: digital silence
    added at an example's ends; None: off), `speeds` (speed-perturbed copies of the training
    set, e.g. (0.9, 1.1)), `band_limits` and `band_limit_p` (with that probability a training
    read is band-limited to one of those rates, so the model also works on narrowband audio),
    `batch_seconds` of audio per batch, `cache` (training features kept in memory; None: when
    they take less than `CACHE_LIMIT_BYTES`), and the audio's `sample_rate`. The features are
    `model.input_dim` log-mel bins over a `noise_floor` (`Fbank`: digital silence reads as the
    quietest recording, not as a value no recording has)."""

    model: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    train: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    loss: str | dict = "ctc"
    noise: NoiseOptions | None = None
    augment: SpecAugmentOptions | None = None
    silence: SilenceOptions | None = None
    speeds: tuple[float, ...] = ()
    band_limits: tuple[int, ...] = ()
    band_limit_p: float = 0.0
    batch_seconds: float = 60.0
    cache: bool | None = False
    sample_rate: int = 16000
    noise_floor: float = 0.0

    def __post_init__(self):
        self.speeds, self.band_limits = tuple(self.speeds), tuple(self.band_limits)
        check_loss(self.loss)  # an unknown loss fails here, before any data is read
        if not all(isinstance(s, (int, float)) and s > 0 for s in self.speeds):
            raise ValueError(f"speeds must be positive numbers, got {list(self.speeds)}")
        if not all(isinstance(r, int) and 0 < r <= self.sample_rate for r in self.band_limits):
            raise ValueError(f"band_limits must be sample rates in (0, {self.sample_rate}], got {list(self.band_limits)}")
        if not 0.0 <= self.band_limit_p <= 1.0 or (self.band_limit_p and not self.band_limits):
            raise ValueError(f"band_limit_p must lie in [0, 1] and needs band_limits, got {self.band_limit_p}")
        if self.batch_seconds <= 0 or self.sample_rate <= 0:
            raise ValueError(f"batch_seconds and sample_rate must be positive, got {self.batch_seconds} and "
                             f"{self.sample_rate}")

    def with_options(self, epochs: int | None = None, loss: str | None = None, config: str | Path | None = None
                     ) -> TrainingConfig:
        """This training with the settings of the JSON file `config` (as `asr train --config`
        changes the defaults), then `epochs` epochs and `loss` (each unchanged for None: a
        recipe's --config, --epochs and --loss)."""
        changed = self if config is None else settings.replace(self, read_settings(config), str(config))
        if epochs is not None:
            changed = dataclasses.replace(changed, train=dataclasses.replace(changed.train, epochs=epochs))
        return changed if loss is None else dataclasses.replace(changed, loss=loss)

    def fbank(self) -> Fbank:
        return Fbank(num_mel_bins=self.model.input_dim, sample_rate=self.sample_rate, noise_floor=self.noise_floor)

    def silence_padding(self, featurizer: Featurizer) -> SilencePadding | None:
        """`SilencePadding` of the features a frame of digital silence has, or None when off."""
        if self.silence is None:
            return None
        fbank = featurizer.fbank
        silence = featurizer(torch.zeros(fbank.window_size))[0]
        frames = round(self.silence.max_seconds * 1000 / fbank.frame_shift_ms)
        return SilencePadding(silence, frames, self.silence.p)

    def augmentation(self, cmvn: GlobalCMVN) -> torch.nn.Module | None:
        """`NoiseBursts`, then `SpecAugment`; either is left out when it is None."""
        steps = [*([NoiseBursts(cmvn, **dataclasses.asdict(self.noise))] if self.noise else []),
                 *([SpecAugment(**dataclasses.asdict(self.augment))] if self.augment else [])]
        return torch.nn.Sequential(*steps) if steps else None

    def run(self, train: Sequence[Utterance], valid: Sequence[Utterance], featurizer: Featurizer, tokenizer: Tokenizer,
            exp_dir: str | Path, seed: int, device: str) -> tuple[TransformerEncoder, float, Topology]:
        """Train on `train`, validating on `valid` (checkpoints in exp_dir; a rerun resumes);
        returns the model (the last epoch, or the average of the last `average_last`; eval
        mode), the training seconds (all runs of this experiment together) and the topology
        its loss trained (how its frames spell tokens, with any learned transitions)."""
        perturbed = speed_perturbed(train, self.speeds)
        hours = sum(u.duration for u in perturbed) / 3600
        log.info("training on %d utterances, %.2f hours of audio (%d of them speed-perturbed copies)",
                 len(perturbed), hours, len(perturbed) - len(train))
        cache = self.cache
        if cache is None:
            frames = hours * 3600 * 1000 / featurizer.fbank.frame_shift_ms * (2 if self.band_limit_p else 1)
            cache = frames * featurizer.fbank.num_mel_bins * 4 < CACHE_LIMIT_BYTES
        rate = featurizer.fbank.sample_rate
        train_loader, sampler = loader(perturbed, rate, featurizer, tokenizer, self.batch_seconds, True, seed,
                                       cache=cache, band_limits=self.band_limits, band_limit_p=self.band_limit_p,
                                       transform=self.silence_padding(featurizer))
        valid_loader, _ = loader(valid, rate, featurizer, tokenizer, self.batch_seconds, shuffle=False, seed=0)
        options = self.train
        if options.epochs is None:
            options = dataclasses.replace(options, epochs=epochs_for(hours))
            log.info("%d epochs for %.2f hours of training audio", options.epochs, hours)
        torch.manual_seed(seed)
        model = TransformerEncoder(self.model.with_vocab(tokenizer.vocab_size))
        loss = make_loss(self.loss, tokenizer, [u.text for u in train])
        trainer = Trainer(model, loss, options, train_loader, valid_loader, sampler=sampler,
                          decode_fn=loss_topology(loss).greedy, detokenize=tokenizer.decode, device=device,
                          augment=self.augmentation(featurizer.cmvn), exp_dir=exp_dir, seed=seed)
        trainer.fit()
        return model.eval(), trainer.train_seconds, loss_topology(loss)

    def save(self, exp_dir: str | Path) -> None:
        """Write the whole config to exp_dir/config.json."""
        Path(exp_dir).mkdir(parents=True, exist_ok=True)
        write_atomic(Path(exp_dir) / CONFIG_FILE, json.dumps(settings.to_dict(self), indent=2) + "\n")


@dataclasses.dataclass
class RecognizerConfig(TrainingConfig):
    """A `TrainingConfig` plus the open-vocabulary parts: `tokens` ("char", "bpe:N" for N
    sentencepiece tokens with the blank, or "phone" through a lexicon), the n-gram order of the
    decoding graph's LM (a Kneser-Ney model of the training transcripts) and the LM scale the
    model directory decodes with by default: `lm_scale`, or when it is None the one of
    `lm_scales` with the lowest WER on the validation set (as Kaldi's scoring picks the LM
    weight on a dev set). CTC posteriors are peaky, so the best scale is below 1 and depends
    on the tokens: 0.5 for AN4's phones, 0.3 for its characters (docs/results.md)."""

    tokens: str = "char"
    lm_order: int = 3
    lm_scale: float | None = None
    lm_scales: tuple[float, ...] = (0.2, 0.3, 0.5, 0.7, 1.0)

    def __post_init__(self):
        super().__post_init__()
        self.lm_scales = tuple(self.lm_scales)
        if self.tokens not in ("char", "phone") and not (self.tokens.startswith("bpe:") and self.tokens[4:].isdigit()):
            raise ValueError(f"tokens must be 'char', 'phone' or 'bpe:N', got {self.tokens!r}")
        if self.lm_order < 1 or not self.lm_scales or min((*self.lm_scales, self.lm_scale or 0)) < 0:
            raise ValueError(f"lm_order must be >= 1 and the LM scales >= 0 (lm_scales not empty), got "
                             f"{self.lm_order}, {self.lm_scale} and {list(self.lm_scales)}")


# What `asr train` does without a --config, and the AN4 recipe: chosen by measurement on AN4's dev
# split (docs/results.md). A conformer of 6 x 144 with 288-wide feed-forwards (2.1M parameters;
# 52 minutes for the AN4 recipe on 2 cores, where 576-wide ones ran past 60); speed-perturbed
# copies, SpecAugment and band-limited reads; warmup sized in epochs, epochs by the amount of
# audio, and the model averaged over the last 5 epochs.
DEFAULT_TRAINING = RecognizerConfig(
    model=EncoderConfig(input_dim=80, architecture="conformer", d_model=144, num_heads=4, num_layers=6, ff_dim=288,
                        conv_kernel=15, dropout=0.1, conv_channels=64, blank_bias=3.0),
    train=TrainerConfig(lr=2e-3, warmup_epochs=3, schedule="cosine", log_every=50, average_last=5),
    augment=SpecAugmentOptions(freq_masks=2, freq_width=15, time_masks=4, time_width=0.05),
    speeds=(0.9, 1.1),
    band_limits=(8000,),
    band_limit_p=0.3,
    batch_seconds=120.0,
    cache=None,
)


def training_from_config(config: dict, where: str = "config") -> RecognizerConfig:
    """`DEFAULT_TRAINING` with a JSON config's settings: nested settings ("model", "train",
    "noise", "augment", "silence") change key by key, null turns "noise", "augment" or
    "silence" off, every other key replaces the default. Errors name the bad key's path."""
    return settings.replace(DEFAULT_TRAINING, config, where)


def train_recognizer(train: Sequence[Utterance], valid: Sequence[Utterance], exp_dir: str | Path,
                     config: RecognizerConfig, lexicon: str | Path | None = None, device: str = "cpu",
                     seed: int = 0, decoding_lm: str | Path | None = None) -> Path:
    """Tokens, CMVN and a CTC encoder trained as `config` says (validated on `valid`), a
    Kneser-Ney LM of the training transcripts (exp_dir/lm.arpa) and the HLG of the training
    words with it, or with `decoding_lm` (an ARPA file, e.g. a corpus's published LM) the HLG
    of that LM's words: the model directory exp_dir/model (decoding with `config.lm_scale`, or
    the best of `config.lm_scales` on `valid`, by default), whose path is returned. The config
    goes to exp_dir/config.json first, the training seconds to exp_dir/train_seconds. Phone
    tokens need `lexicon` (WORD PHONE ... lines). Rerunning it resumes training. Under torchrun every rank trains its share of
    each batch and rank 0 alone writes files; when training ends the ranks leave the process group
    together, and the others return."""
    if (config.tokens == "phone") != (lexicon is not None):
        raise ValueError("phone tokens need a lexicon, and a lexicon makes the tokens phones")
    exp = Path(exp_dir)
    texts = [u.text for u in train]
    fbank = config.fbank()
    main = current_context().is_main
    if main:  # under torchrun rank 0 alone writes; the other ranks read what it wrote
        config.save(exp)
        _write_tokenizer(config.tokens, lexicon, texts, exp / "lang")
        fit_cmvn(train, config.sample_rate, fbank).save(exp / "cmvn.json")
    barrier()
    tokenizer = Tokenizer.load(exp / "lang")
    featurizer = Featurizer(fbank, GlobalCMVN.load(exp / "cmvn.json"))
    model, seconds, topology = config.run(train, valid, featurizer, tokenizer, exp, seed, device)
    leave_together()  # training was the last collective work
    if not main:
        return exp / "model"  # rank 0 goes on to the LM, the graph and the model directory
    write_atomic(exp / "train_seconds", f"{seconds}\n")
    if decoding_lm is None:
        lm = estimate_kneser_ney((text.split() for text in texts), config.lm_order)
        write_arpa(lm, exp / "lm.arpa")
        words = sorted({w for text in texts for w in text.split()})
    else:
        lm = read_arpa(decoding_lm)
        words = [w for w in lm.words() if w != UNK]
    spellings = tokenizer.lexicon(words)
    if len(spellings) < len(words):
        log.warning("%d of the %d words of %s cannot be spelled in the model's tokens: left out of the graph",
                    len(words) - len(spellings), len(words), decoding_lm)
    saved = ModelDir(model, featurizer, tokenizer, build_hlg(tokenizer.tokens, spellings, lm, topology=topology))
    scale = config.lm_scale if config.lm_scale is not None else best_lm_scale(saved, valid, config.lm_scales, device)
    return save_model_dir(exp / "model", model, tokenizer, featurizer, saved.graph, decoding={"lm_scale": scale})


def best_lm_scale(saved: ModelDir, valid: Sequence[Utterance], scales: Sequence[float], device: str = "cpu") -> float:
    """The LM scale of `scales` whose beam search through `saved`'s graph makes the fewest word
    errors on `valid` (the smaller scale on a tie); every scale's WER is logged."""
    references = {u.id: u.text for u in valid}
    inputs = [(u.id, u.audio) for u in valid]
    rates = {}
    for scale in scales:
        decoder = saved.decoder(beam=BeamOptions(**{**saved.decoding, "lm_scale": scale}), device=device)
        rates[scale] = score(references, Recognizer(saved, decoder, device).texts(inputs)).words.error_rate
    best = min(sorted(scales), key=rates.__getitem__)
    log.info("LM scale %g: the lowest validation WER of %s", best,
             ", ".join(f"{scale:g}: {100 * rate:.2f}%" for scale, rate in rates.items()))
    return best


def train_from_manifests(train_manifest: str | Path, valid_manifest: str | Path, exp_dir: str | Path,
                         config: RecognizerConfig = DEFAULT_TRAINING, lexicon: str | Path | None = None,
                         device: str = "cpu", seed: int = 0) -> Path:
    """`asr train`: `train_recognizer` on JSONL manifests."""
    return train_recognizer(read_manifest(train_manifest), read_manifest(valid_manifest), exp_dir, config, lexicon,
                            device, seed)


def _write_tokenizer(tokens: str, lexicon, texts: list[str], directory: Path) -> None:
    """The tokenizer `tokens` names, made from the lexicon or the training texts, saved in `directory`."""
    if tokens == "phone":
        PhoneTokenizer(read_lexicon(lexicon)).save(directory)
    elif tokens == "char":
        CharTokenizer.build(texts).save(directory)
    else:
        BPETokenizer.train(texts, int(tokens[4:]), directory)
