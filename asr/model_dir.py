"""A trained model directory: everything decoding needs, written by `asr train` and the recipes
and read by `asr transcribe` with no other arguments.

    model.pt        encoder weights and `EncoderConfig`
    features.json   sample rate and fbank options; cmvn.json: global CMVN statistics
    tokens.txt      the model's output tokens (plus the tokenizer's own files)
    graph/          its decoding graph folder (`asr.decoding.DecodingGraph`: HLG.pt, words.txt,
                    tokens.txt, lexicon.txt and lm.arpa), the format `asr compile-graph` writes
    decoding.json   optional: the beam search settings this model decodes with by default
                    (e.g. {"lm_scale": 0.5}), which `asr transcribe` options override
"""

from __future__ import annotations

import dataclasses
import json
import logging
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

import graphs
from graphs.io import write_atomic

from .decoding import (
    BeamOptions,
    BeamSearchDecoder,
    Decoder,
    DecodingGraph,
    GreedyDecoder,
    PrefixBeamDecoder,
    ViterbiDecoder,
)
from .decoding.context import hotword_graph
from .features import Fbank, GlobalCMVN
from .lang import build_hlg
from .lm import with_unseen_words
from .model import EncoderConfig, TransformerEncoder
from .tokenizer import Tokenizer, read_tokens_txt
from .train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger("asr.model_dir")

GRAPH_FOLDER = "graph"
REQUIRED_FILES = ("model.pt", "features.json", "cmvn.json", "tokens.txt", GRAPH_FOLDER)
DECODING_FILE = "decoding.json"


@dataclasses.dataclass
class Featurizer:
    """Waveform -> normalized log-mel features (picklable, for DataLoader workers)."""

    fbank: Fbank
    cmvn: GlobalCMVN | None = None

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        return self._normalized(self.fbank(waveform))

    def stream(self, blocks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Features of a waveform given in blocks, block by block (`Fbank.stream`)."""
        return (self._normalized(features) for features in self.fbank.stream(blocks))

    def _normalized(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.cmvn is None else self.cmvn.apply(features)


@dataclasses.dataclass
class ModelDir:
    """A loaded model directory; `model` is in eval mode on the CPU."""

    model: TransformerEncoder
    featurizer: Featurizer
    tokenizer: Tokenizer
    graph: DecodingGraph
    decoding: dict[str, float] = dataclasses.field(default_factory=dict)  # decoding.json, {} without one

    @property
    def tokens(self) -> list[str]:
        return self.tokenizer.tokens

    @property
    def sample_rate(self) -> int:
        return self.featurizer.fbank.sample_rate

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame of the encoder."""
        return self.featurizer.fbank.frame_shift_ms / 1000.0 * self.model.config.subsampling

    def decoder(self, graph: DecodingGraph | None = None, beam: BeamOptions | None = None,
                prefix_beam: int | None = None, greedy: bool = False, device: str | torch.device = "cpu",
                hotwords: Sequence[tuple[str, float | None]] = (), hotword_score: float = 1.5) -> Decoder:
        """The search `asr transcribe` runs: `greedy` (no search), `prefix_beam` (CTC prefix
        search of that width), or else a search through `graph` (default: the directory's
        own): exact Viterbi when the graph has no epsilon input arcs and no `beam` options or
        hotwords are given, otherwise beam search with `beam` (default: decoding.json's
        settings). `hotwords` (phrase, score per token or None for `hotword_score`) bias the
        prefix search token by token and the graph search word by word."""
        if greedy and hotwords:
            raise ValueError("greedy decoding uses no search: hotwords need --prefix-beam or a graph search")
        if greedy and (prefix_beam is not None or beam is not None or graph is not None):
            raise ValueError("greedy decoding uses no search: give no graph, beam or prefix-beam options with it")
        if prefix_beam is not None and (beam is not None or graph is not None):
            raise ValueError("prefix beam search uses no graph: give no graph or beam options with it")
        if greedy:
            return GreedyDecoder(self.tokenizer, self.graph.topology)
        if prefix_beam is not None:
            if self.graph.topology.name != "ctc":
                raise ValueError(f"prefix beam search reads CTC frames; this model was trained with "
                                 f"{self.graph.topology.name.upper()}: decode it through its graph or greedily")
            context = (hotword_graph(hotwords, self.tokenizer.encode, self.tokenizer.vocab_size, hotword_score)
                       if hotwords else None)
            return PrefixBeamDecoder(self.tokenizer, prefix_beam, context)
        graph = graph or self.graph
        if beam is None and not hotwords and not bool((graph.graph.ilabel == graphs.EPSILON).any()):
            return ViterbiDecoder(graph)
        context = None
        if hotwords:
            graph = self._with_words_of(hotwords, graph)
            index = {word: label for label, word in enumerate(graph.words)}
            context = hotword_graph(hotwords, partial(_word_labels, index), len(graph.words), hotword_score)
        return BeamSearchDecoder(graph, beam or BeamOptions(**self.decoding), device, context)

    def _with_words_of(self, hotwords: Sequence[tuple[str, float | None]], graph: DecodingGraph) -> DecodingGraph:
        """`graph`, or when hotwords use words it lacks that the tokens can spell and the graph
        was made from an LM, that graph compiled again with those words in its lexicon and in
        its LM as unigrams of <unk>'s probability (or the least likely unigram's): words the LM
        never saw, reachable now, and the hotword bonus does the rest."""
        wanted = {word for phrase, _ in hotwords for word in phrase.split()} - set(graph.words)
        added = self.tokenizer.lexicon(sorted(wanted))
        if not added or graph.lm is None:
            return graph  # words left missing are named when the phrases are looked up
        lm = with_unseen_words(graph.lm, added)
        log.info("hotwords: %d words the graph lacks added to it (%s), at the LM's <unk> probability",
                 len(added), ", ".join(added))
        return build_hlg(graph.tokens, {**graph.lexicon(), **added}, lm, topology=graph.topology)


def _word_labels(index: dict[str, int], phrase: str) -> list[int]:
    """A phrase's word labels in a graph; a word the graph lacks is a ValueError naming it."""
    missing = [word for word in phrase.split() if word not in index]
    if missing:
        raise ValueError(f"{', '.join(missing)} not in the graph's vocabulary (give a graph or lexicon that has "
                         f"{'it' if len(missing) == 1 else 'them'}, or decode with --prefix-beam)")
    return [index[word] for word in phrase.split()]


def save_model_dir(folder: str | Path, model: TransformerEncoder, tokenizer: Tokenizer, featurizer: Featurizer,
                   graph: DecodingGraph, decoding: dict[str, float] | None = None) -> Path:
    """Write the directory described in the module docstring (decoding.json when `decoding`
    is given); returns its path."""
    if graph.tokens != tokenizer.tokens:
        raise ValueError("the decoding graph was made for other tokens than the tokenizer's")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "model.pt", {"model": model.state_dict(), "config": model.config.to_dict()})
    tokenizer.save(folder)
    featurizer.cmvn.save(folder / "cmvn.json")
    fbank = featurizer.fbank
    options = {"sample_rate": fbank.sample_rate, "num_mel_bins": fbank.num_mel_bins,
               "frame_length_ms": fbank.frame_length_ms, "frame_shift_ms": fbank.frame_shift_ms,
               "noise_floor": fbank.noise_floor}
    write_atomic(folder / "features.json", json.dumps(options, indent=2) + "\n")
    graph.save(folder / GRAPH_FOLDER)
    if decoding:
        write_atomic(folder / DECODING_FILE, json.dumps(BeamOptions.numeric(decoding, "decoding"), indent=2) + "\n")
    return folder


def load_model_dir(folder: str | Path) -> ModelDir:
    """Read a directory written by `save_model_dir`; a missing file or a token set that does not
    match the model's output is a ValueError naming the directory."""
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
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
    graph = DecodingGraph.load(folder / GRAPH_FOLDER, tokens)
    return ModelDir(model.eval(), featurizer, Tokenizer.load(folder), graph, _read_decoding(folder / DECODING_FILE))


def _read_decoding(path: Path) -> dict[str, float]:
    """decoding.json's settings, {} when the directory has none."""
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return BeamOptions.numeric(options, str(path))
