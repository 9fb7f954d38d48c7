"""What every recipe does: parse the common options, run stages, fit CMVN, batch data, train a
CTC encoder, decode through a word graph, score, and write results.json plus a model directory.

A recipe module supplies only its corpus preparation, token set, lexicon, grammar and sizes:
for a closed-vocabulary task that is a `WordRecipe` and its `run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import soundfile
import torch

import graphs

from .audio import LowSampleRateWarning, load_audio
from .data import BucketBatchSampler, SpeechDataset, Utterance, collate, read_manifest, speed_perturbed, write_manifest
from .decoding import greedy_ctc
from .features import Fbank, GlobalCMVN, NoiseBursts, SpecAugment
from .files import atomic_open, write_atomic
from .lang import build_hlg
from .lm import estimate_kneser_ney, write_arpa
from .losses import make_loss
from .model_dir import Featurizer, ModelDir, load_model_dir, save_model_dir
from .model import EncoderConfig, TransformerEncoder
from .scoring import score
from .tokenizer import BPETokenizer, CharTokenizer, PhoneTokenizer, Tokenizer, read_lexicon
from .train import Trainer, TrainerConfig
from .transcribe import Recognizer

log = logging.getLogger("asr.recipe")


def arguments(description: str, data_dir: str, exp_dir: str, tokens: str | None = None) -> argparse.Namespace:
    """The options every recipe takes; with `tokens` (its default) also --tokens."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=data_dir, help="corpus location (downloaded there if absent)")
    parser.add_argument("--exp-dir", default=exp_dir, help="where manifests, checkpoints and results go")
    parser.add_argument("--stage", type=int, default=0, help="first stage to run")
    parser.add_argument("--stop-stage", type=int, default=100, help="last stage to run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of the recipe's (a quick trial)")
    if tokens is not None:
        parser.add_argument("--tokens", default=tokens, help=f"phone (the corpus lexicon), char or bpe:N (default {tokens})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    Path(args.exp_dir).mkdir(parents=True, exist_ok=True)
    return args


def stage(args, number: int, name: str) -> bool:
    """Whether stage `number` is selected; logs it when it is."""
    selected = args.stage <= number <= args.stop_stage
    if selected:
        log.info("stage %d: %s", number, name)
    return selected


def fit_cmvn(utterances: Sequence[Utterance], sample_rate: int, fbank: Fbank) -> GlobalCMVN:
    return GlobalCMVN.fit(fbank(load_audio(u.audio, sample_rate)) for u in utterances)


def loader(utterances, sample_rate: int, featurize: Callable, tokenizer: Tokenizer, max_seconds: float,
           shuffle: bool, seed: int, cache: bool = False, band_limits: Sequence[int] = (), band_limit_p: float = 0.0
           ) -> tuple[torch.utils.data.DataLoader, BucketBatchSampler]:
    """Duration-bucketed batches of at most `max_seconds` of audio; `cache` keeps features in
    memory; `band_limits`/`band_limit_p` band-limit some reads (`SpeechDataset`)."""
    dataset = SpeechDataset(list(utterances), partial(load_audio, sample_rate=sample_rate), featurize,
                            tokenizer.encode, cache=cache, band_limits=band_limits, band_limit_p=band_limit_p,
                            target_graph=tokenizer.target_graph)
    sampler = BucketBatchSampler([u.duration for u in utterances], max_seconds, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate), sampler


CACHE_LIMIT_BYTES = 4 << 30  # training features cached in memory by default when they take less
AUDIO_HOURS_TRAINED = 60.0  # default training length: epochs of this much audio in all...
EPOCH_RANGE = (10, 60)  # ...but at least 10 and at most 60 epochs


def epochs_for(hours: float) -> int:
    """Default number of epochs for `hours` of training audio per epoch (speed-perturbed copies
    included): about `AUDIO_HOURS_TRAINED` hours in all, within `EPOCH_RANGE` (33 for AN4's
    1.8 hours, 10 for 100 hours and more)."""
    low, high = EPOCH_RANGE
    return int(min(high, max(low, round(AUDIO_HOURS_TRAINED / max(hours, 1e-9)))))


@dataclasses.dataclass
class CTCTraining:
    """How to train a CTC encoder: `model`, `train`, `noise` and `augment` hold
    `EncoderConfig`, `TrainerConfig`, `NoiseBursts` and `SpecAugment` arguments; `loss` names
    the loss (`asr.losses.make_loss`: "ctc", "crctc" or a dict with options); `speeds` adds
    speed-perturbed copies of the training set (e.g. (0.9, 1.1)); with probability
    `band_limit_p` a training read is band-limited to one of `band_limits` (e.g. (8000,)), so
    the model also works on narrowband audio; batches hold at most `batch_seconds` of audio;
    `cache` keeps training features in memory (None: when they take less than
    `CACHE_LIMIT_BYTES`). Without "epochs" in `train`, the number of epochs follows the amount
    of training audio (`epochs_for`)."""

    model: dict
    train: dict
    noise: dict | None = None
    augment: dict | None = None
    speeds: Sequence[float] = ()
    batch_seconds: float = 60.0
    cache: bool | None = False
    loss: str | dict = "ctc"
    band_limits: Sequence[int] = ()
    band_limit_p: float = 0.0

    def with_epochs(self, epochs: int | None) -> CTCTraining:
        """This training with `epochs` epochs (unchanged for None)."""
        return self if epochs is None else dataclasses.replace(self, train={**self.train, "epochs": epochs})

    def augmentation(self, cmvn: GlobalCMVN) -> torch.nn.Module | None:
        """`NoiseBursts`, then `SpecAugment`; either is left out when its options are empty."""
        steps = [*([NoiseBursts(cmvn, **self.noise)] if self.noise else []),
                 *([SpecAugment(**self.augment)] if self.augment else [])]
        return torch.nn.Sequential(*steps) if steps else None

    def run(self, train: Sequence[Utterance], valid_loader, featurizer: Featurizer, tokenizer: Tokenizer,
            exp_dir: str | Path, seed: int, device: str) -> tuple[TransformerEncoder, float]:
        """Train on `train` (checkpoints in exp_dir; a rerun resumes); returns the model (the
        last epoch, or the average of the last `average_last`; eval mode) and the training
        seconds (all runs of this experiment together)."""
        perturbed = speed_perturbed(train, self.speeds)
        hours = sum(u.duration for u in perturbed) / 3600
        log.info("training on %d utterances, %.2f hours of audio (%d of them speed-perturbed copies)",
                 len(perturbed), hours, len(perturbed) - len(train))
        cache = self.cache
        if cache is None:
            frames = hours * 3600 * 1000 / featurizer.fbank.frame_shift_ms * (2 if self.band_limit_p else 1)
            cache = frames * featurizer.fbank.num_mel_bins * 4 < CACHE_LIMIT_BYTES
        train_loader, sampler = loader(perturbed, featurizer.fbank.sample_rate, featurizer, tokenizer,
                                       self.batch_seconds, True, seed, cache=cache, band_limits=self.band_limits,
                                       band_limit_p=self.band_limit_p)
        options = {"epochs": epochs_for(hours), **self.train}
        if "epochs" not in self.train:
            log.info("%d epochs for %.2f hours of training audio", options["epochs"], hours)
        torch.manual_seed(seed)
        model = TransformerEncoder(EncoderConfig(vocab_size=tokenizer.vocab_size, **self.model))
        trainer = Trainer(model, make_loss(self.loss), TrainerConfig(exp_dir=str(exp_dir), seed=seed, **options),
                          train_loader, valid_loader, sampler=sampler, decode_fn=greedy_ctc,
                          detokenize=tokenizer.decode, device=device, augment=self.augmentation(featurizer.cmvn))
        trainer.fit()
        return model.eval(), trainer.train_seconds


def write_manifests(exp_dir: str | Path, splits: dict[str, list[Utterance]]) -> None:
    for name, utterances in splits.items():
        write_manifest(Path(exp_dir) / f"{name}.jsonl", utterances)


@dataclasses.dataclass
class WordRecipe:
    """A closed-vocabulary task: each word of `words` is spelled with the tokens in
    `pronunciations[word]` (lists of token sequences), decoding searches `grammar` (an
    acceptor over word indexes), and the encoder is trained as `training` says.

    `run` executes the stages 0 get the corpus, 1 manifests + CMVN + tokens, 2 train and save
    the model directory, 3 decode the test split as `asr transcribe` does (`evaluate`), score
    and write results.json.
    """

    name: str
    words: Sequence[str]
    pronunciations: dict[str, list[list[str]]]
    grammar: Callable[[], graphs.Graph]
    sample_rate: int
    training: CTCTraining

    def tokens(self) -> list[str]:
        """The token set in order of first use by the words' pronunciations."""
        return list(dict.fromkeys(t for word in self.words for pron in self.pronunciations[word] for t in pron))

    def run(self, args: argparse.Namespace, fetch: Callable[[Path], None],
            prepare: Callable[[Path], dict[str, list[Utterance]]]) -> dict | None:
        """fetch(data_dir) makes the corpus available (stage 0); prepare(data_dir) returns its
        {"train": [...], "test": [...]} utterances (stage 1). Returns the results of stage 3."""
        exp, data_dir = Path(args.exp_dir), Path(args.data_dir)
        fbank = Fbank(num_mel_bins=self.training.model["input_dim"], sample_rate=self.sample_rate)
        if stage(args, 0, "get the corpus"):
            fetch(data_dir)
        if stage(args, 1, "manifests, CMVN, tokens"):
            splits = prepare(data_dir)
            write_manifests(exp, splits)
            fit_cmvn(splits["train"], self.sample_rate, fbank).save(exp / "cmvn.json")
            PhoneTokenizer(self.pronunciations, phones=self.tokens()).save(exp / "lang")
        test = read_manifest(exp / "test.jsonl") if any(args.stage <= n <= args.stop_stage for n in (2, 3)) else []
        if stage(args, 2, "train"):
            tokenizer = Tokenizer.load(exp / "lang")
            featurizer = Featurizer(fbank, GlobalCMVN.load(exp / "cmvn.json"))
            test_loader, _ = loader(test, self.sample_rate, featurizer, tokenizer, 60.0, shuffle=False, seed=0)
            model, seconds = self.training.with_epochs(args.epochs).run(
                read_manifest(exp / "train.jsonl"), test_loader, featurizer, tokenizer, exp, args.seed, args.device)
            lexicon = {word: self.pronunciations[word] for word in self.words}  # word i is the grammar's label i
            graph = build_hlg(tokenizer.tokens, lexicon, grammar=self.grammar(), optimize=False)
            save_model_dir(exp / "model", model, tokenizer, featurizer, graph)
            write_atomic(exp / "train_seconds", f"{seconds}\n")
        if stage(args, 3, "decode and score"):
            results = evaluate(load_model_dir(exp / "model"), "test", test, args.device, exp)
            summary = {"test_set": f"{self.name} test ({len(test)} files)", **results,
                       "train_seconds": round(float((exp / "train_seconds").read_text()), 1)}
            write_atomic(exp / "results.json", json.dumps(summary, indent=2) + "\n")
            return summary
        return None


# What `asr train` does without a --config, and the AN4 recipe: chosen by measurement on AN4's dev
# split (docs/results.md). A conformer of 6 x 144 with 288-wide feed-forwards (2.1M parameters;
# 52 minutes for the AN4 recipe on 2 cores, where 576-wide ones ran past 60); speed-perturbed
# copies, SpecAugment and band-limited reads; warmup sized in epochs, epochs by the amount of
# audio, and the model averaged over the last 5 epochs.
DEFAULT_TRAINING = CTCTraining(
    model=dict(input_dim=80, architecture="conformer", d_model=144, num_heads=4, num_layers=6, ff_dim=288,
               conv_kernel=15, dropout=0.1, conv_channels=64, blank_bias=3.0),
    train=dict(lr=2e-3, warmup_epochs=3, schedule="cosine", log_every=50, average_last=5),
    augment=dict(freq_masks=2, freq_width=15, time_masks=4, time_width=0.05),
    speeds=(0.9, 1.1),
    band_limits=(8000,),
    band_limit_p=0.3,
    batch_seconds=120.0,
    cache=None,
)


def training_from_config(config: dict) -> CTCTraining:
    """`DEFAULT_TRAINING` with a config's settings: its "model" and "train" entries override
    single options, every other key replaces the default (e.g. "augment": {} turns SpecAugment off)."""
    unknown = sorted(set(config) - {field.name for field in dataclasses.fields(CTCTraining)})
    if unknown:
        raise ValueError(f"config: unknown keys {unknown}")
    merged = {name: {**getattr(DEFAULT_TRAINING, name), **config.get(name, {})} for name in ("model", "train")}
    return dataclasses.replace(DEFAULT_TRAINING, **{**config, **merged})


def train_from_manifests(train_manifest: str | Path, valid_manifest: str | Path, exp_dir: str | Path,
                         tokens: str = "char", lexicon: str | Path | None = None, config: dict | None = None,
                         lm_order: int = 3, device: str = "cpu", seed: int = 0) -> Path:
    """`asr train`: `train_recognizer` on JSONL manifests, trained as `DEFAULT_TRAINING` says
    but for the settings of a JSON `config` (`training_from_config`), which holds
    `CTCTraining`'s fields ("model", "train", "loss", "noise", "augment", "speeds",
    "band_limits", "band_limit_p", "batch_seconds", "cache") and "sample_rate" (16000).

    `tokens` is "char" or "bpe:N" (sentencepiece, N tokens with the blank), unless `lexicon`
    (WORD PHONE PHONE ... lines) makes the tokens phones. Rerunning it resumes training.
    """
    config = dict(config or {})
    sample_rate = int(config.pop("sample_rate", 16000))
    training = training_from_config(config)
    return train_recognizer(read_manifest(train_manifest), read_manifest(valid_manifest), exp_dir, training,
                            sample_rate, tokens, lexicon, lm_order, device, seed)


# CTC posteriors are peaky: the LM is worth less than one acoustic log-probability per unit.
# Chosen on AN4's dev split with the first model trained there (a transformer; docs/results.md),
# before the models it was then used for; recorded in each model directory's decoding.json.
DEFAULT_LM_SCALE = 0.5


def train_recognizer(train: Sequence[Utterance], valid: Sequence[Utterance], exp_dir: str | Path,
                     training: CTCTraining, sample_rate: int = 16000, tokens: str = "char",
                     lexicon: str | Path | None = None, lm_order: int = 3, device: str = "cpu", seed: int = 0,
                     lm_scale: float = DEFAULT_LM_SCALE) -> Path:
    """Tokens, CMVN and a CTC encoder trained as `training` says (validated on `valid`), a
    Kneser-Ney LM of the training transcripts (exp_dir/lm.arpa) and the HLG of the training
    words with it: the model directory exp_dir/model (decoding with `lm_scale` by default),
    whose path is returned. The training seconds go to exp_dir/train_seconds. Rerunning it
    resumes training."""
    exp = Path(exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    texts = [u.text for u in train]
    fbank = Fbank(num_mel_bins=training.model.get("input_dim", 80), sample_rate=sample_rate)
    tokenizer = _make_tokenizer(tokens, lexicon, texts, exp / "lang")
    featurizer = Featurizer(fbank, fit_cmvn(train, sample_rate, fbank))
    featurizer.cmvn.save(exp / "cmvn.json")
    valid_loader, _ = loader(valid, sample_rate, featurizer, tokenizer, 60.0, shuffle=False, seed=0)
    model, seconds = training.run(train, valid_loader, featurizer, tokenizer, exp, seed, device)
    write_atomic(exp / "train_seconds", f"{seconds}\n")
    lm = estimate_kneser_ney((text.split() for text in texts), lm_order)
    write_arpa(lm, exp / "lm.arpa")
    words = sorted({w for text in texts for w in text.split()})
    spellings = {w: [[tokenizer.tokens[t] for t in spelling] for spelling in tokenizer.spellings(w)] for w in words}
    graph = build_hlg(tokenizer.tokens, spellings, lm)
    return save_model_dir(exp / "model", model, tokenizer, featurizer, graph, decoding={"lm_scale": lm_scale})


def _make_tokenizer(tokens: str, lexicon, texts: list[str], directory: Path) -> Tokenizer:
    if lexicon:
        tokenizer = PhoneTokenizer(read_lexicon(lexicon))
    elif tokens == "char":
        tokenizer = CharTokenizer.build(texts)
    elif tokens.startswith("bpe:") and tokens[4:].isdigit():
        return BPETokenizer.train(texts, int(tokens[4:]), directory)
    else:
        raise ValueError(f"tokens must be 'char' or 'bpe:N' (or give a lexicon), got {tokens!r}")
    tokenizer.save(directory)
    return tokenizer


NARROWBAND_RATE = 8000  # telephone bandwidth: the narrowband copies of evaluation sets


def narrowband_copies(utterances: Sequence[Utterance], folder: str | Path, rate: int = NARROWBAND_RATE
                      ) -> list[Utterance]:
    """The utterances resampled to `rate` Hz and written as 16-bit FLAC files in `folder`: the
    same speech as an 8 kHz recording of it, which the model reads back up-sampled."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for u in utterances:
        path = folder / f"{u.id}.flac"
        if not path.is_file():
            with atomic_open(path, "wb") as f:
                soundfile.write(f, load_audio(u.audio, rate).numpy(), rate, format="FLAC", subtype="PCM_16")
        copies.append(dataclasses.replace(u, audio=str(path.resolve())))
    return copies


def evaluate(saved: ModelDir, name: str, utterances: Sequence[Utterance], device: str, exp_dir: str | Path) -> dict:
    """WER/CER of `saved` on `utterances` through its graph (the search `asr transcribe MODEL`
    runs, with the directory's decoding settings) and greedy (the best token of every frame:
    WER/CER for character and word-piece models, the phone error rate against the first
    pronunciations for phone models); prints the WER line of set `name` and writes the
    Kaldi-format hypotheses to exp_dir/hyp_<name>.txt and exp_dir/hyp_<name>_greedy.txt."""
    references = {u.id: u.text for u in utterances}
    inputs = [(u.id, u.audio) for u in utterances]
    audio_seconds = sum(u.duration for u in utterances)
    tokenizer = saved.tokenizer
    with warnings.catch_warnings():  # narrowband copies are read below the model's rate on purpose
        warnings.simplefilter("ignore", LowSampleRateWarning)
        start = time.perf_counter()
        graph = _hypotheses(Recognizer(saved, device=device), inputs)
        rtf = (time.perf_counter() - start) / audio_seconds
        greedy = _hypotheses(Recognizer(saved, saved.decoder(greedy=True), device), inputs)
    for suffix, hypotheses in (("", graph), ("_greedy", greedy)):
        write_atomic(Path(exp_dir) / f"hyp_{name}{suffix}.txt",
                     "".join(f"{u} {hypotheses.get(u, '')}".rstrip() + "\n" for u in references))
    result = score(references, graph)
    summary = {"files": len(utterances), "num_words": result.words.reference_units, "wer": result.words.error_rate,
               "cer": result.chars.error_rate, "decode_rtf": round(rtf, 4)}
    if tokenizer.kind == "phone":
        phones = {u: tokenizer.decode(tokenizer.encode(text)) for u, text in references.items()}
        summary["greedy_per"] = score(phones, greedy).words.error_rate
    else:
        greedy_result = score(references, greedy)
        summary.update(greedy_wer=greedy_result.words.error_rate, greedy_cer=greedy_result.chars.error_rate)
    print(result.words.kaldi_line(f"WER {name}"))
    log.info("decoded %d files, %.1f s of audio, at real-time factor %.4f (features, encoder and search)",
             len(utterances), audio_seconds, rtf)
    return summary


def _hypotheses(recognizer: Recognizer, inputs: list[tuple[str, str]]) -> dict[str, str]:
    hypotheses = {}
    for transcript in recognizer.transcribe(inputs, batch_size=16):
        if transcript.error:
            log.warning("could not decode %s: %s (scored as all deletions)", transcript.audio, transcript.error)
        else:
            hypotheses[transcript.id] = transcript.text
    return hypotheses


@dataclasses.dataclass
class CorpusRecipe:
    """An open-vocabulary corpus: words spelled by the tokenizer (--tokens: "phone" through the
    corpus lexicon, "char" or "bpe:N"), decoded through the HLG of the training words with a
    Kneser-Ney LM of the training transcripts, the encoder trained as `training` says.

    `run` executes the stages 0 get the corpus, 1 manifests (each split, and an 8 kHz copy
    `<split>_8k` of each of the `narrowband` splits), 2 train and write the model directory
    (`train_recognizer`, as `asr train` does), 3 decode every set but train (graph search as
    `asr transcribe` runs it, and greedy), print each WER and write results.json.
    `test_location` says where the official test set would be, for the message printed when
    it is absent.
    """

    name: str
    sample_rate: int
    training: CTCTraining
    test_location: str
    narrowband: Sequence[str] = ("dev",)
    lm_order: int = 3

    def run(self, args: argparse.Namespace, fetch: Callable[[Path], object],
            prepare: Callable[[Path], dict[str, list[Utterance]]], lexicon: Callable[[Path], Path]) -> dict | None:
        """fetch(data_dir) makes the corpus available (stage 0); prepare(data_dir) returns its
        {"train", "dev", and "test" when present} utterances (stage 1); lexicon(data_dir) is
        the pronunciation dictionary for phone tokens. Returns the results of stage 3."""
        exp, data_dir = Path(args.exp_dir), Path(args.data_dir)
        if stage(args, 0, "get the corpus"):
            fetch(data_dir)
        if stage(args, 1, "manifests"):
            splits = prepare(data_dir)
            for name in self.narrowband:
                splits[f"{name}_8k"] = narrowband_copies(splits[name], exp / "audio" / f"{name}_8k")
            for stale in set(exp.glob("*.jsonl")) - {exp / f"{name}.jsonl" for name in splits}:
                stale.unlink()  # e.g. a test manifest from a data dir that had the test set
            write_manifests(exp, splits)
        if stage(args, 2, "train"):
            train_recognizer(read_manifest(exp / "train.jsonl"), read_manifest(exp / "dev.jsonl"), exp,
                             self.training.with_epochs(args.epochs),
                             self.sample_rate, args.tokens, lexicon(data_dir) if args.tokens == "phone" else None,
                             self.lm_order, args.device, args.seed)
        if stage(args, 3, "decode and score"):
            return self._score(exp, args)
        return None

    def _score(self, exp: Path, args) -> dict:
        saved = load_model_dir(exp / "model")
        sets = sorted(path.stem for path in exp.glob("*.jsonl") if path.stem != "train")
        results = {name: evaluate(saved, name, read_manifest(exp / f"{name}.jsonl"), args.device, exp)
                   for name in sets}
        summary = {"recipe": self.name, "tokens": saved.tokenizer.kind, "seed": args.seed,
                   "parameters": saved.model.num_parameters(), "encoder": saved.model.config.architecture,
                   "train_seconds": round(float((exp / "train_seconds").read_text()), 1),
                   "test_scored": "test" in results, "sets": results}
        write_atomic(exp / "results.json", json.dumps(summary, indent=2) + "\n")
        if "test" not in results:
            print(f"{self.name}: the official test set is absent ({self.test_location}): scored "
                  f"{', '.join(sets)} only")
        return summary
