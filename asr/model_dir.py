"""A trained model directory: everything decoding needs, written by a recipe and read by
`asr transcribe` with no other arguments.

    model.pt        encoder weights and `EncoderConfig`
    features.json   sample rate and fbank options; cmvn.json: global CMVN statistics
    tokens.txt      the model's output tokens (plus the tokenizer's own files)
    words.txt       the words the graph's output labels index (icefall format)
    HLG.pt          the decoding graph (`graphs.save`), tokens in, word indexes out
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch

import graphs

from .features import Fbank, GlobalCMVN
from .lang import DecodingGraph
from .files import write_atomic
from .model import EncoderConfig, TransformerEncoder
from .tokenizer import Tokenizer, read_tokens_txt, read_words_txt, write_words_txt
from .train.checkpoint import load_checkpoint, save_checkpoint

REQUIRED_FILES = ("model.pt", "features.json", "cmvn.json", "tokens.txt", "words.txt", "HLG.pt")


@dataclasses.dataclass
class Featurizer:
    """Waveform -> normalized log-mel features (picklable, for DataLoader workers)."""

    fbank: Fbank
    cmvn: GlobalCMVN | None = None

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        features = self.fbank(waveform)
        return features if self.cmvn is None else self.cmvn.apply(features)


@dataclasses.dataclass
class ModelDir:
    """A loaded model directory; `model` is in eval mode on the CPU."""

    model: TransformerEncoder
    graph: graphs.Graph
    words: list[str]
    tokens: list[str]
    featurizer: Featurizer
    tokenizer: Tokenizer

    def decoding_graph(self) -> DecodingGraph:
        """The directory's graph with its words' spellings in the model's tokens."""
        return DecodingGraph(self.graph, self.words, {word: self.tokenizer.spellings(word) for word in self.words})

    @property
    def sample_rate(self) -> int:
        return self.featurizer.fbank.sample_rate

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame of the encoder."""
        return self.featurizer.fbank.frame_shift_ms / 1000.0 * self.model.config.subsampling


def save_model_dir(folder: str | Path, model: TransformerEncoder, tokenizer: Tokenizer, featurizer: Featurizer,
                   words: Sequence[str], graph: graphs.Graph) -> Path:
    """Write the directory described in the module docstring; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "model.pt", {"model": model.state_dict(), "config": model.config.to_dict()})
    tokenizer.save(folder)
    write_words_txt(list(words), folder / "words.txt")
    featurizer.cmvn.save(folder / "cmvn.json")
    fbank = featurizer.fbank
    options = {"sample_rate": fbank.sample_rate, "num_mel_bins": fbank.num_mel_bins,
               "frame_length_ms": fbank.frame_length_ms, "frame_shift_ms": fbank.frame_shift_ms}
    write_atomic(folder / "features.json", json.dumps(options, indent=2) + "\n")
    graphs.save(graph, folder / "HLG.pt")
    return folder


def load_model_dir(folder: str | Path) -> ModelDir:
    """Read a directory written by `save_model_dir`; a missing file or a token set that does not
    match the model's output is a ValueError naming the directory."""
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder}: not a model directory (missing {', '.join(missing)})")
    saved = load_checkpoint(folder / "model.pt")
    model = TransformerEncoder(EncoderConfig.from_dict(saved["config"]))
    model.load_state_dict(saved["model"])
    tokens = read_tokens_txt(folder / "tokens.txt")
    if len(tokens) != model.config.vocab_size:
        raise ValueError(f"{folder}: tokens.txt has {len(tokens)} tokens but the model outputs "
                         f"{model.config.vocab_size}: the token set does not match the model")
    options = json.loads((folder / "features.json").read_text())
    featurizer = Featurizer(Fbank(**options), GlobalCMVN.load(folder / "cmvn.json"))
    graph = graphs.load(folder / "HLG.pt")
    words = read_words_txt(folder / "words.txt")
    if graph.num_arcs and int(graph.ilabel.max()) >= len(tokens):
        raise ValueError(f"{folder}: HLG.pt reads token {int(graph.ilabel.max())} but tokens.txt has {len(tokens)}")
    return ModelDir(model.eval(), graph, words, tokens, featurizer, Tokenizer.load(folder))
