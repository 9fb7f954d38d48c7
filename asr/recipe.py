"""What every recipe does: parse the common options, run stages, fit CMVN, batch data, train a
CTC encoder, decode through a word graph, score, and write results.json plus a model directory.

A recipe module supplies only its corpus preparation, token set, lexicon, grammar and sizes.
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
from .data import BucketBatchSampler, SpeechDataset, Utterance, collate, write_manifest
from .decode import decoding_graph, greedy_ctc, viterbi_words
from .features import Fbank, GlobalCMVN
from .files import write_atomic
from .losses import CTCLoss
from .model import EncoderConfig, TransformerEncoder
from .scoring import score
from .tokenizer import Tokenizer, write_words_txt
from .train import Trainer, TrainerConfig
from .train.checkpoint import load_checkpoint, save_checkpoint

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


@dataclasses.dataclass
class Featurizer:
    """Waveform -> normalized log-mel features (picklable, for DataLoader workers)."""

    fbank: Fbank
    cmvn: GlobalCMVN | None = None

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        features = self.fbank(waveform)
        return features if self.cmvn is None else self.cmvn.apply(features)


def fit_cmvn(utterances: Sequence[Utterance], sample_rate: int, fbank: Fbank) -> GlobalCMVN:
    return GlobalCMVN.fit(fbank(load_audio(u.audio, sample_rate)) for u in utterances)


def loader(utterances, sample_rate: int, featurize: Callable, tokenizer: Tokenizer, max_seconds: float,
           shuffle: bool, seed: int) -> tuple[torch.utils.data.DataLoader, BucketBatchSampler]:
    dataset = SpeechDataset(list(utterances), partial(load_audio, sample_rate=sample_rate), featurize, tokenizer.encode)
    sampler = BucketBatchSampler([u.duration for u in utterances], max_seconds, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate), sampler


def train_ctc(model_config: EncoderConfig, trainer_config: TrainerConfig, train_loader, sampler, valid_loader,
              tokenizer: Tokenizer, device: str, augment: torch.nn.Module | None = None
              ) -> tuple[TransformerEncoder, float]:
    """Train a CTC transformer encoder (features augmented by `augment` in training, e.g.
    SpecAugment); returns it (best = last epoch) and the training seconds."""
    torch.manual_seed(trainer_config.seed)
    model = TransformerEncoder(model_config)
    trainer = Trainer(model, CTCLoss(), trainer_config, train_loader, valid_loader, sampler=sampler,
                      decode_fn=greedy_ctc, detokenize=tokenizer.decode, device=device, augment=augment)
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
           train_seconds: float) -> dict:
    """Score, print the WER and write exp_dir/results.json and the Kaldi-format hypotheses."""
    result = score(references, hypotheses)
    exp_dir = Path(exp_dir)
    write_atomic(exp_dir / "hyp.txt", "".join(f"{u} {hypotheses.get(u, '')}\n" for u in sorted(references)))
    summary = {"test_set": test_set, "wer": result.words.error_rate, "cer": result.chars.error_rate,
               "num_words": result.words.reference_units, "train_seconds": round(train_seconds, 1)}
    write_atomic(exp_dir / "results.json", json.dumps(summary, indent=2) + "\n")
    print(result.words.kaldi_line("WER"))
    print(result.words.table("Wrd"))
    return summary


def save_model_dir(folder: str | Path, model: TransformerEncoder, tokenizer: Tokenizer, featurizer: Featurizer,
                   sample_rate: int, words: Sequence[str], graph: graphs.Graph) -> Path:
    """Everything decoding needs: weights, model and feature config, tokens.txt, words.txt, HLG."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "model.pt", {"model": model.state_dict(), "config": model.config.to_dict()})
    tokenizer.save(folder)
    write_words_txt(list(words), folder / "words.txt")
    featurizer.cmvn.save(folder / "cmvn.json")
    fbank = featurizer.fbank
    options = {"sample_rate": sample_rate, "num_mel_bins": fbank.num_mel_bins,
               "frame_length_ms": fbank.frame_length_ms, "frame_shift_ms": fbank.frame_shift_ms}
    write_atomic(folder / "features.json", json.dumps(options, indent=2) + "\n")
    graphs.save(graph, folder / "HLG.pt")
    return folder


def write_manifests(exp_dir: str | Path, splits: dict[str, list[Utterance]]) -> None:
    for name, utterances in splits.items():
        write_manifest(Path(exp_dir) / f"{name}.jsonl", utterances)


def load_model_dir(folder: str | Path) -> tuple[TransformerEncoder, graphs.Graph]:
    """The encoder (in eval mode) and decoding graph saved by `save_model_dir`."""
    folder = Path(folder)
    saved = load_checkpoint(folder / "model.pt")
    model = TransformerEncoder(EncoderConfig.from_dict(saved["config"]))
    model.load_state_dict(saved["model"])
    return model.eval(), graphs.load(folder / "HLG.pt")
