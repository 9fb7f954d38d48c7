"""The decoding graph and its folder: the one format `asr compile-graph`, `asr train` and the
recipes write and every decoder reads.

    HLG.pt       the graph (`graphs.save`): token ids in, word indexes out
    words.txt    the words its output labels index (icefall format)
    tokens.txt   the tokens its input labels index (the model's output tokens)
    lexicon.txt  each word's token spellings (for forced alignment and word times)
    lm.arpa      G's language model, when G came from one (needed to rescore with another)
    topology.json  how frames spell tokens (H), when it is not CTC's: e.g. ASG's, with its
                 learned transitions (`asr.decoding.topology`)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import graphs
from graphs.io import write_atomic

from ..lm import NgramLM, read_arpa, write_arpa
from ..tokenizer import read_lexicon, read_tokens_txt, read_words_txt, write_tokens_txt, write_words_txt
from .topology import CTCTopology, Topology, load_topology, save_topology

GRAPH_FILE, WORDS_FILE, TOKENS_FILE, LEXICON_FILE, LM_FILE = "HLG.pt", "words.txt", "tokens.txt", "lexicon.txt", "lm.arpa"


@dataclasses.dataclass
class DecodingGraph:
    """A decoding graph with what reading its paths needs: `words[i]` is output label i,
    `tokens[j]` input label j, `spellings[word]` the token-id sequences of each word, `lm`
    the language model G was made from (None for a hand-made grammar), and `topology` the H
    the graph was composed with (how the model's frames spell tokens)."""

    graph: graphs.Graph
    words: list[str]
    tokens: list[str]
    spellings: dict[str, list[list[int]]]
    lm: NgramLM | None = None
    topology: Topology = dataclasses.field(default_factory=CTCTopology)

    def __post_init__(self):
        if self.graph.num_arcs and int(self.graph.ilabel.max()) >= len(self.tokens):
            raise ValueError(f"the graph reads token {int(self.graph.ilabel.max())} but there are only "
                             f"{len(self.tokens)} tokens")
        unspelled = [word for word in self.words if not self.spellings.get(word)]
        if unspelled:
            raise ValueError(f"words without a spelling: {', '.join(unspelled[:5])}")

    def spell(self, word: str) -> list[list[int]]:
        """The token spellings of `word` (KeyError for a word outside the graph)."""
        return self.spellings[word]

    def lexicon(self) -> dict[str, list[list[str]]]:
        """Each word's spellings as token symbols, in word order (lexicon.txt's contents, and
        what `asr.lang.build_hlg` takes)."""
        return {word: [[self.tokens[t] for t in spelling] for spelling in self.spellings[word]] for word in self.words}

    def save(self, folder: str | Path) -> Path:
        """Write the folder described in the module docstring; returns its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        graphs.save(self.graph, folder / GRAPH_FILE)
        if self.lm is not None:
            write_arpa(self.lm, folder / LM_FILE)
        write_words_txt(self.words, folder / WORDS_FILE)
        write_tokens_txt(self.tokens, folder / TOKENS_FILE)
        write_atomic(folder / LEXICON_FILE, "".join(f"{word} {' '.join(spelling)}\n"
                                                    for word, spellings in self.lexicon().items()
                                                    for spelling in spellings))
        save_topology(self.topology, folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path, tokens: Sequence[str] | None = None) -> DecodingGraph:
        """Read a graph folder; with `tokens` (a model's), a graph made for other tokens is an error."""
        folder = Path(folder)
        missing = [name for name in (GRAPH_FILE, WORDS_FILE, TOKENS_FILE, LEXICON_FILE) if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{folder}: not a graph directory (missing {', '.join(missing)}); make one with "
                             "`asr compile-graph`")
        own_tokens = read_tokens_txt(folder / TOKENS_FILE)
        if tokens is not None and own_tokens != list(tokens):
            raise ValueError(f"{folder}/{TOKENS_FILE} differs from the model's token set: compile the graph with the "
                             "model's tokens.txt")
        index = {token: i for i, token in enumerate(own_tokens)}
        lexicon = read_lexicon(folder / LEXICON_FILE)
        try:
            return cls(graphs.load(folder / GRAPH_FILE), read_words_txt(folder / WORDS_FILE), own_tokens,
                       {word: [[index[t] for t in pron] for pron in prons] for word, prons in lexicon.items()},
                       read_arpa(folder / LM_FILE) if (folder / LM_FILE).is_file() else None, load_topology(folder))
        except KeyError as error:
            raise ValueError(f"{folder}/{LEXICON_FILE}: token {error} is not in {TOKENS_FILE}") from None
        except ValueError as error:
            raise ValueError(f"{folder}: {error}") from None
