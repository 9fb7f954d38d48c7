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
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch

import graphs

from .audio import load_audio
from .data import BucketBatchSampler, SpeechDataset, Utterance, collate, read_manifest, speed_perturbed, write_manifest
from .decode import decoding_graph, greedy_ctc, viterbi_words
from .features import Fbank, GlobalCMVN, NoiseBursts, SpecAugment
from .files import write_atomic
from .lang import build_hlg
from .lm import estimate_kneser_ney, write_arpa
from .losses import CTCLoss
from .model_dir import Featurizer, load_model_dir, save_model_dir
from .model import EncoderConfig, TransformerEncoder
from .scoring import score
from .tokenizer import BPETokenizer, CharTokenizer, PhoneTokenizer, Tokenizer, read_lexicon
from .train import Trainer, TrainerConfig

log = logging.getLogger("asr.recipe")


def arguments(description: str, data_dir: str, exp_dir: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", default=data_dir, help="corpus location (downloaded there if absent)")
    parser.add_argument("--exp-dir", default=exp_dir, help="where manifests, checkpoints and results go")
    parser.add_argument("--stage", type=int, default=0, help="first stage to run")
    parser.add_argument("--stop-stage", type=int, default=100, help="last stage to run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
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
           shuffle: bool, seed: int, cache: bool = False) -> tuple[torch.utils.data.DataLoader, BucketBatchSampler]:
    """Duration-bucketed batches of at most `max_seconds` of audio; `cache` keeps features in memory."""
    dataset = SpeechDataset(list(utterances), partial(load_audio, sample_rate=sample_rate), featurize,
                            tokenizer.encode, cache=cache)
    sampler = BucketBatchSampler([u.duration for u in utterances], max_seconds, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate), sampler


@dataclasses.dataclass
class CTCTraining:
    """How to train a CTC transformer encoder: `model`, `train`, `noise` and `augment` hold
    `EncoderConfig`, `TrainerConfig`, `NoiseBursts` and `SpecAugment` arguments; `speeds` adds
    speed-perturbed copies of the training set (e.g. (0.9, 1.1)); batches hold at most
    `batch_seconds` of audio; `cache` keeps training features in memory."""

    model: dict
    train: dict
    noise: dict | None = None
    augment: dict | None = None
    speeds: Sequence[float] = ()
    batch_seconds: float = 60.0
    cache: bool = False

    def augmentation(self, cmvn: GlobalCMVN) -> torch.nn.Module | None:
        """`NoiseBursts`, then `SpecAugment`; either is left out when its options are empty."""
        steps = [*([NoiseBursts(cmvn, **self.noise)] if self.noise else []),
                 *([SpecAugment(**self.augment)] if self.augment else [])]
        return torch.nn.Sequential(*steps) if steps else None

    def run(self, train: Sequence[Utterance], valid_loader, featurizer: Featurizer, tokenizer: Tokenizer,
            exp_dir: str | Path, seed: int, device: str) -> tuple[TransformerEncoder, float]:
        """Train on `train` (checkpoints in exp_dir; a rerun resumes); returns the model (last
        epoch, eval mode) and the training seconds."""
        perturbed = speed_perturbed(train, self.speeds)
        log.info("training on %d utterances, %.2f hours of audio (%d of them speed-perturbed copies)",
                 len(perturbed), sum(u.duration for u in perturbed) / 3600, len(perturbed) - len(train))
        train_loader, sampler = loader(perturbed, featurizer.fbank.sample_rate, featurizer, tokenizer,
                                       self.batch_seconds, True, seed, cache=self.cache)
        torch.manual_seed(seed)
        model = TransformerEncoder(EncoderConfig(vocab_size=tokenizer.vocab_size, **self.model))
        trainer = Trainer(model, CTCLoss(), TrainerConfig(exp_dir=str(exp_dir), seed=seed, **self.train), train_loader,
                          valid_loader, sampler=sampler, decode_fn=greedy_ctc, detokenize=tokenizer.decode,
                          device=device, augment=self.augmentation(featurizer.cmvn))
        start = time.perf_counter()
        trainer.fit()
        return model.eval(), time.perf_counter() - start


def word_graph(tokenizer: Tokenizer, words: Sequence[str], pronunciations: dict[str, list[list[str]]],
               grammar: graphs.Graph) -> graphs.Graph:
    """H o L o G over the tokenizer's tokens; word labels are indexes into `words`."""
    index = {t: i for i, t in enumerate(tokenizer.tokens)}
    entries = [(w, [index[t] for t in pron]) for w, word in enumerate(words) for pron in pronunciations[word]]
    return decoding_graph(tokenizer.vocab_size, entries, grammar)


@torch.no_grad()
def decode(model: TransformerEncoder, data, graph: graphs.Graph, words: Sequence[str], device: str) -> dict[str, str]:
    """Utterance id -> best word sequence through `graph`."""
    hypotheses = {}
    model.to(device)
    for batch in data:
        log_probs, lengths = model(batch["features"].to(device), batch["feature_lengths"].to(device))
        best, _ = viterbi_words(log_probs.cpu().double(), lengths.cpu(), graph)
        hypotheses.update({u: " ".join(words[w] for w in ws) for u, ws in zip(batch["ids"], best)})
    return hypotheses


def finish(exp_dir: str | Path, test_set: str, references: dict[str, str], hypotheses: dict[str, str],
           train_seconds: float, decode_rtf: float) -> dict:
    """Score, print the WER and write exp_dir/results.json and the Kaldi-format hypotheses;
    `decode_rtf` is decoding time over audio time."""
    result = score(references, hypotheses)
    exp_dir = Path(exp_dir)
    write_atomic(exp_dir / "hyp.txt", "".join(f"{u} {hypotheses.get(u, '')}\n" for u in sorted(references)))
    summary = {"test_set": test_set, "wer": result.words.error_rate, "cer": result.chars.error_rate,
               "num_words": result.words.reference_units, "train_seconds": round(train_seconds, 1),
               "decode_rtf": round(decode_rtf, 4)}
    write_atomic(exp_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    print(result.words.kaldi_line("WER"))
    print(result.words.table("Wrd"))
    return summary


def write_manifests(exp_dir: str | Path, splits: dict[str, list[Utterance]]) -> None:
    for name, utterances in splits.items():
        write_manifest(Path(exp_dir) / f"{name}.jsonl", utterances)


@dataclasses.dataclass
class WordRecipe:
    """A closed-vocabulary task: each word of `words` is spelled with the tokens in
    `pronunciations[word]` (lists of token sequences), decoding searches `grammar` (an
    acceptor over word indexes), and the encoder is trained as `training` says.

    `run` executes the stages 0 get the corpus, 1 manifests + CMVN + tokens, 2 train and save
    the model directory, 3 decode the test split, score and write results.json.
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
        if not any(args.stage <= n <= args.stop_stage for n in (2, 3)):
            return None  # nothing below is selected, and stage 1's outputs may not exist yet
        tokenizer = Tokenizer.load(exp / "lang")
        featurizer = Featurizer(fbank, GlobalCMVN.load(exp / "cmvn.json"))
        test = read_manifest(exp / "test.jsonl")
        test_loader, _ = loader(test, self.sample_rate, featurizer, tokenizer, 60.0, shuffle=False, seed=0)
        if stage(args, 2, "train"):
            model, seconds = self.training.run(read_manifest(exp / "train.jsonl"), test_loader, featurizer, tokenizer,
                                               exp, args.seed, args.device)
            graph = word_graph(tokenizer, self.words, self.pronunciations, self.grammar())
            save_model_dir(exp / "model", model, tokenizer, featurizer, self.words, graph)
            write_atomic(exp / "train_seconds", f"{seconds}\n")
        if stage(args, 3, "decode and score"):
            saved = load_model_dir(exp / "model")
            start = time.perf_counter()
            hypotheses = decode(saved.model, test_loader, saved.graph, saved.words, args.device)
            audio_seconds = sum(u.duration for u in test)
            rtf = (time.perf_counter() - start) / audio_seconds
            log.info("decoded %d files, %.1f s of audio, at real-time factor %.4f (features, encoder and "
                     "Viterbi search)", len(test), audio_seconds, rtf)
            return finish(exp, f"{self.name} test ({len(test)} files)", {u.id: u.text for u in test}, hypotheses,
                          float((exp / "train_seconds").read_text()), rtf)
        return None


def train_from_manifests(train_manifest: str | Path, valid_manifest: str | Path, exp_dir: str | Path,
                         tokens: str = "char", lexicon: str | Path | None = None, config: dict | None = None,
                         lm_order: int = 3, device: str = "cpu", seed: int = 0) -> Path:
    """`asr train`: a CTC transformer on JSONL manifests, then a model directory exp_dir/model
    whose graph is the training words with a Kneser-Ney LM of the training transcripts.

    `tokens` is "char" or "bpe:N" (sentencepiece, N tokens with the blank), unless `lexicon`
    (WORD PHONE PHONE ... lines) makes the tokens phones. `config` holds `CTCTraining`'s fields
    ("model", "train", "noise", "augment", "speeds", "batch_seconds", "cache") and "sample_rate"
    (16000). Rerunning it resumes training.
    """
    config = dict(config or {})
    sample_rate = int(config.pop("sample_rate", 16000))
    unknown = sorted(set(config) - {field.name for field in dataclasses.fields(CTCTraining)})
    if unknown:
        raise ValueError(f"config: unknown keys {unknown}")
    options = {"model": {}, "train": {}, **config}
    training = CTCTraining(**{**options, "model": {"input_dim": 80, **options["model"]}})
    exp = Path(exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    train, valid = read_manifest(train_manifest), read_manifest(valid_manifest)
    texts = [u.text for u in train]
    fbank = Fbank(num_mel_bins=training.model["input_dim"], sample_rate=sample_rate)
    tokenizer = _make_tokenizer(tokens, lexicon, texts, exp / "lang")
    featurizer = Featurizer(fbank, fit_cmvn(train, sample_rate, fbank))
    featurizer.cmvn.save(exp / "cmvn.json")
    valid_loader, _ = loader(valid, sample_rate, featurizer, tokenizer, 60.0, shuffle=False, seed=0)
    model, _ = training.run(train, valid_loader, featurizer, tokenizer, exp, seed, device)
    lm = estimate_kneser_ney((text.split() for text in texts), lm_order)
    write_arpa(lm, exp / "lm.arpa")
    words = sorted({w for text in texts for w in text.split()})
    spellings = {w: [[tokenizer.tokens[t] for t in spelling] for spelling in tokenizer.spellings(w)] for w in words}
    graph = build_hlg(tokenizer.tokens, spellings, lm)
    return save_model_dir(exp / "model", model, tokenizer, featurizer, graph.words, graph.graph)


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
