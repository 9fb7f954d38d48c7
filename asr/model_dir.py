"""A trained model directory: everything decoding needs, written by a recipe and read by
`asr transcribe` with no other arguments.

    model.pt        encoder weights and `EncoderConfig`
    features.json   sample rate and fbank options; cmvn.json: global CMVN statistics
    tokens.txt      the model's output tokens (plus the tokenizer's own files)
    words.txt       the words the graph's output labels index (icefall format)
    HLG.pt          the decoding graph (`graphs.save`), tokens in, word indexes out
    decoding.json   optional: the beam search settings this model decodes with by default
                    (e.g. {"lm_scale": 0.5}), which `asr transcribe` options override
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
DECODING_FILE = "decoding.json"
DECODING_OPTIONS = ("beam", "max_active", "lm_scale", "word_score", "lattice_beam")  # numbers, see BeamOptions


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
    decoding: dict[str, float] = dataclasses.field(default_factory=dict)  # decoding.json, {} without one

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
                   words: Sequence[str], graph: graphs.Graph, decoding: dict[str, float] | None = None) -> Path:
    """Write the directory described in the module docstring (decoding.json when `decoding`
    is given); returns its path."""
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
    if decoding:
        write_atomic(folder / DECODING_FILE, json.dumps(_check_decoding(decoding, "decoding"), indent=2) + "\n")
    return folder


def _check_decoding(options: object, where: str) -> dict[str, float]:
    if not isinstance(options, dict) or set(options) - set(DECODING_OPTIONS) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
        raise ValueError(f"{where}: expected an object of numbers with keys among {', '.join(DECODING_OPTIONS)}, "
                         f"got {options!r}")
    return dict(options)


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
    return ModelDir(model.eval(), graph, words, tokens, featurizer, Tokenizer.load(folder),
                    _read_decoding(folder / DECODING_FILE))


def _read_decoding(path: Path) -> dict[str, float]:
    """decoding.json's settings, {} when the directory has none."""
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return _check_decoding(options, str(path))
