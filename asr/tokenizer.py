"""Tokenizers: text <-> token ids for the acoustic model's output columns.

Conventions shared by every tokenizer:

- id 0 is the CTC blank (`<blk>`); `encode` never produces it and `decode` ignores it, so
  ids are emission columns directly and `vocab_size` (blank included) is the model's output size;
- `tokens[i]` is the symbol of id `i`; `save(dir)` writes it as Kaldi/icefall `tokens.txt`
  (`<blk> 0`, then `symbol id`), plus the tokenizer's own files and `tokenizer.json`
  (its kind and options); `Tokenizer.load(dir)` reads any kind back;
- text is whitespace-separated words, used as given (no case folding or other normalization:
  that belongs to data preparation), and `decode` returns words joined by single spaces.

Symbol files (`tokens.txt`, `words.txt`) are read with errors that name the file and line,
and every file is written atomically (temporary file beside it, then `os.replace`).
"""

from __future__ import annotations

import abc
import io
import json
import os
import re
from pathlib import Path
from typing import ClassVar, Iterable, Mapping, Sequence

import graphs
from graphs.io import write_atomic

BLANK = "<blk>"
TOKENS_FILE = "tokens.txt"
METADATA_FILE = "tokenizer.json"
WORDS_TXT_SPECIAL = ("<eps>", "#0", "<s>", "</s>")  # icefall's words.txt: <eps> first, the others last


# --------------------------------------------------------------------------- files
def _check_symbol(symbol: str, what: str) -> None:
    if not isinstance(symbol, str) or symbol.split() != [symbol]:
        raise ValueError(f"{what} {symbol!r} must be a non-empty string without whitespace")


def _read_symbol_table(path, first: str) -> tuple[list[str], list[int]]:
    """Symbols of a `symbol id` file whose ids run 0, 1, 2, ... in file order, id 0 being `first`;
    also each symbol's line number. Errors name the file and line."""
    table = graphs.SymbolTable.read(path, dense=True, first=first)
    return list(table), [table.line(symbol) for symbol in table]


def write_tokens_txt(tokens: Sequence[str], path) -> None:
    """Write `tokens` (index = id, `tokens[0] == "<blk>"`) as `symbol id` lines."""
    if not tokens or tokens[0] != BLANK:
        raise ValueError(f"tokens[0] must be {BLANK!r}")
    for token in tokens:
        _check_symbol(token, "token")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"tokens are not unique: {sorted(t for t in set(tokens) if tokens.count(t) > 1)}")
    write_atomic(path, "".join(f"{token} {i}\n" for i, token in enumerate(tokens)))


def read_tokens_txt(path) -> list[str]:
    """The tokens of a `tokens.txt` (index = id); it must start with `<blk> 0` and have no
    duplicate symbols or ids, nor gaps."""
    return _read_symbol_table(path, BLANK)[0]


def write_words_txt(words: Iterable[str], path) -> None:
    """Write an icefall `words.txt`: `<eps> 0`, the words in the order given (ids 1..n), then
    `#0`, `<s>`, `</s>`. Ids are OpenFst ids: `graphs.SymbolTable.read` gives word id k label k-1."""
    words = list(words)
    seen = set()
    for word in words:
        _check_symbol(word, "word")
        if word in WORDS_TXT_SPECIAL:
            raise ValueError(f"word {word!r} is reserved in words.txt (added by write_words_txt)")
        if word in seen:
            raise ValueError(f"word {word!r} is listed twice")
        seen.add(word)
    symbols = [WORDS_TXT_SPECIAL[0], *words, *WORDS_TXT_SPECIAL[1:]]
    write_atomic(path, "".join(f"{symbol} {i}\n" for i, symbol in enumerate(symbols)))


def read_words_txt(path) -> list[str]:
    """The words of an icefall `words.txt` (word i has id i + 1), without `<eps>`, `#0`, `<s>`, `</s>`."""
    symbols, lines = _read_symbol_table(path, WORDS_TXT_SPECIAL[0])
    tail = list(WORDS_TXT_SPECIAL[1:])
    words = symbols[1:-len(tail)]
    if symbols[-len(tail):] != tail:  # name the first misplaced special symbol's line, else the last line
        number = next((n for s, n in zip(symbols[1:], lines[1:]) if s in tail), lines[-1])
        raise ValueError(f"{os.fspath(path)}, line {number}: words.txt must end with {', '.join(tail)}")
    return words


_VARIANT = re.compile(r"^(.+)\(\d+\)$")


def read_lexicon(path) -> dict[str, list[list[str]]]:
    """Pronunciations of a CMU-style or Kaldi `lexicon.txt` dictionary: word -> phone lists, in file order.

    Lines are `WORD P1 P2 ...`; a variant is written `WORD(2) ...` (CMU) or as a repeated word
    (Kaldi). `;;;` lines are comments; an exact repeat of a pronunciation is kept once (it
    would only duplicate lexicon-graph paths). Errors name the file and line.
    """
    lexicon: dict[str, list[list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";;;"):
                continue
            if len(fields) == 1:
                raise ValueError(f"{os.fspath(path)}, line {number}: word {fields[0]!r} has no pronunciation")
            variant = _VARIANT.match(fields[0])
            word = variant.group(1) if variant else fields[0]
            pronunciations = lexicon.setdefault(word, [])
            if fields[1:] not in pronunciations:
                pronunciations.append(fields[1:])
    return lexicon


# --------------------------------------------------------------------------- tokenizers
class Tokenizer(abc.ABC):
    """Text <-> ids with id 0 reserved for the CTC blank; `tokens[i]` is the symbol of id i."""

    kind: ClassVar[str]  # name in tokenizer.json
    tokens: list[str]

    @property
    def vocab_size(self) -> int:
        """Number of ids, blank included: the acoustic model's output size."""
        return len(self.tokens)

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids (>= 1) of a text."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; blanks (0) are skipped (repeats are not merged: that is CTC decoding's job)."""

    def spellings(self, word: str) -> list[list[int]]:
        """The token sequences that spell `word` inside a sentence, for lexicon graphs."""
        return [self.encode(word)]

    def lexicon(self, words: Iterable[str]) -> dict[str, list[list[str]]]:
        """Each word's spellings as token symbols (a lexicon for `asr.lang.build_hlg`); a word
        these tokens cannot spell is left out."""
        spellings = {}
        for word in words:
            try:
                spellings[word] = [[self.tokens[t] for t in spelling] for spelling in self.spellings(word)]
            except (KeyError, ValueError):
                continue
        return spellings

    def target_graph(self, text: str) -> graphs.Graph | None:
        """An acceptor of every token sequence that spells `text`, for training on all of them;
        None when `encode(text)` is the only spelling (the default)."""
        return None

    def save(self, directory) -> None:
        """Write tokens.txt, the kind's own files and tokenizer.json (last) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_tokens_txt(self.tokens, directory / TOKENS_FILE)
        options = self._save_files(directory)
        write_atomic(directory / METADATA_FILE, json.dumps({"kind": self.kind, **options}, indent=2) + "\n")

    @classmethod
    def load(cls, directory) -> "Tokenizer":
        """The tokenizer saved in `directory` (of the kind recorded there; called on a subclass,
        that kind must match)."""
        directory = Path(directory)
        with open(directory / METADATA_FILE, encoding="utf-8") as f:
            options = json.load(f)
        kind = options.pop("kind", None)
        kinds = {k.kind: k for k in (CharTokenizer, BPETokenizer, PhoneTokenizer)}
        if kind not in kinds:
            raise ValueError(f"{directory / METADATA_FILE}: unknown tokenizer kind {kind!r}")
        if cls is not Tokenizer and kinds[kind] is not cls:
            raise ValueError(f"{directory} holds a {kind!r} tokenizer, not {cls.kind!r}")
        tokenizer = kinds[kind]._load_files(directory, **options)
        if tokenizer.tokens != read_tokens_txt(directory / TOKENS_FILE):
            raise ValueError(f"{directory / TOKENS_FILE} does not match the tokenizer's other files")
        return tokenizer

    @abc.abstractmethod
    def _save_files(self, directory: Path) -> dict:
        """Write the files besides tokens.txt; return the options for tokenizer.json."""

    @classmethod
    @abc.abstractmethod
    def _load_files(cls, directory: Path, **options) -> "Tokenizer":
        """Rebuild from the files `_save_files` wrote and its options."""

    def _symbols(self, ids: Iterable[int]) -> list[str]:
        """Symbols of the non-blank ids; ValueError names an id outside the vocabulary."""
        symbols = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(self.tokens) - 1})")
            if i:
                symbols.append(self.tokens[i])
        return symbols


class CharTokenizer(Tokenizer):
    """Characters of the words, with a word-separator token between words and a token of its
    own for each letter that stands alone as a word.

    Tokens are `<blk>`, the separator (id 1; default "|", wav2letter's, so it is not mistaken for
    sentencepiece's word-prefix "▁"), the training characters sorted, then the letter words:
    "the cat" encodes as t h e | c a t, and "P I T" as |P| | |I| | |T|. A letter said alone is
    said by its name ("pee"), not with the sound it has inside words (the p of "place"), so
    spelled names, initials and words like "I" get tokens of their own; a letter word is any
    one-character word of a cased alphabet (upper and lower case differ) found in the training
    texts. A character not seen at build time raises ValueError naming it (no `<unk>`: an
    unexpected character in a transcript is a data error to fix, not to hide).
    """

    kind = "char"

    def __init__(self, tokens: Sequence[str], word_separator: str = "|"):
        """`tokens` as `build` lays them out; letter-word tokens are those that begin with the
        separator (a character token never holds the separator's characters)."""
        if len(tokens) < 2 or tokens[0] != BLANK or tokens[1] != word_separator:
            raise ValueError(f"character tokens must start with {BLANK!r}, {word_separator!r}")
        self.tokens = list(tokens)
        self.word_separator = word_separator
        self._ids: dict[str, int] = {}
        self._letter_word_ids: dict[str, int] = {}
        for i, token in enumerate(self.tokens[2:], 2):
            if token.startswith(word_separator):
                self._letter_word_ids[token[len(word_separator):-len(word_separator)]] = i
            else:
                self._ids[token] = i

    @classmethod
    def build(cls, texts: Iterable[str], word_separator: str = "|", letter_words: bool = True
              ) -> "CharTokenizer":
        """A tokenizer for every character of `texts` (whitespace separates words) and, unless
        `letter_words` is False, for every letter standing alone as a word in them."""
        _check_symbol(word_separator, "word separator")
        words = {word for text in texts for word in text.split()}
        chars = {char for word in words for char in word}
        clash = chars & set(word_separator)
        if clash:
            raise ValueError(f"the texts contain the word separator's character {min(clash)!r}")
        letters = sorted(w for w in words if len(w) == 1 and w.lower() != w.upper()) if letter_words else []
        letter_tokens = [f"{word_separator}{letter}{word_separator}" for letter in letters]
        return cls([BLANK, word_separator, *sorted(chars), *letter_tokens], word_separator)

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if ids:
                ids.append(1)
            if word in self._letter_word_ids:
                ids.append(self._letter_word_ids[word])
                continue
            for char in word:
                if char not in self._ids:
                    raise ValueError(f"character {char!r} (in {word!r}) is not in the vocabulary")
                ids.append(self._ids[char])
        return ids

    def spellings(self, word: str) -> list[list[int]]:
        """The characters followed by the separator (words inside a sentence), or alone (the last)."""
        chars = self.encode(word)
        return [chars + [1], chars]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; leading, trailing and repeated separators make no empty words."""
        words = "".join(self._symbols(ids)).split(self.word_separator)
        return " ".join(word for word in words if word)

    def _save_files(self, directory: Path) -> dict:
        return {"word_separator": self.word_separator}

    @classmethod
    def _load_files(cls, directory: Path, word_separator: str) -> "CharTokenizer":
        return cls(read_tokens_txt(directory / TOKENS_FILE), word_separator)


class BPETokenizer(Tokenizer):
    """Sentencepiece word pieces; our id = sentencepiece id + 1, leaving 0 for the blank.

    The sentencepiece model has no bos/eos/pad pieces (a CTC-style model never emits them) and
    keeps `<unk>` as its piece 0, so our id 1: a character unseen in training encodes as `<unk>`
    and decodes as " ⁇ ". Pieces mark word starts with "▁", as `graphs.wordpiece` expects.
    Training uses identity normalization and full character coverage, so every training text
    round-trips exactly (up to whitespace), and one thread without sampling, so it is deterministic.
    """

    kind = "bpe"
    MODEL_FILE = "bpe.model"

    def __init__(self, model: bytes):
        import sentencepiece

        self._model = model
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=model)
        if self._sp.bos_id() >= 0 or self._sp.eos_id() >= 0 or self._sp.pad_id() >= 0 or self._sp.unk_id() != 0:
            raise ValueError("the sentencepiece model must have <unk> as piece 0 and no bos, eos or pad")
        self.tokens = [BLANK, *(self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size()))]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, directory, model_type: str = "bpe") -> "BPETokenizer":
        """Train on `texts` (an iterator is fine) so that `vocab_size` counts the blank too
        (sentencepiece gets `vocab_size - 1` pieces), save into `directory`, return it.
        `model_type` is "bpe" or "unigram"; too large a vocabulary for the texts raises."""
        import sentencepiece

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be 'bpe' or 'unigram', not {model_type!r}")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size - 1,
                model_type=model_type, character_coverage=1.0, normalization_rule_name="identity",
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, input_sentence_size=0,
                shuffle_input_sentence=False, minloglevel=2,
            )
        except RuntimeError as error:  # its sizes exclude our blank
            raise ValueError(f"sentencepiece could not train vocab_size {vocab_size} "
                             f"({vocab_size - 1} pieces + the blank): {error}") from error
        tokenizer = cls(model.getvalue())
        tokenizer.save(directory)
        return tokenizer

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self._sp.encode(text, out_type=int)]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        self._symbols(ids)  # raises for an id outside the vocabulary
        return self._sp.decode([i - 1 for i in ids if i])

    def _save_files(self, directory: Path) -> dict:
        write_atomic(directory / self.MODEL_FILE, self._model)
        return {"model": self.MODEL_FILE}

    @classmethod
    def _load_files(cls, directory: Path, model: str) -> "BPETokenizer":
        return cls((directory / model).read_bytes())


class PhoneTokenizer(Tokenizer):
    """Phones through a pronunciation lexicon.

    `encode` spells each word with its first pronunciation (the dictionary's main one; graph
    training can use all of them through `target_graph`); an out-of-vocabulary word raises ValueError
    naming it. `decode` returns the phones separated by spaces: words are not recoverable from
    phones without a lexicon graph search. `pronunciations` maps word -> pronunciations as id lists.
    """

    kind = "phone"
    LEXICON_FILE = "lexicon.txt"

    def __init__(self, lexicon: Mapping[str, Sequence[Sequence[str]]], phones: Sequence[str] | None = None):
        """`lexicon`: word -> phone lists (as `read_lexicon` returns); `phones`: the phone set
        in id order (ids 1..), by default the lexicon's phones sorted."""
        if phones is None:
            phones = sorted({p for prons in lexicon.values() for pron in prons for p in pron})
        self.tokens = [BLANK, *phones]
        for phone in phones:
            _check_symbol(phone, "phone")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"phones must be unique and not {BLANK!r}")
        ids = {phone: i for i, phone in enumerate(self.tokens) if i}
        self.pronunciations: dict[str, list[list[int]]] = {}
        for word, prons in lexicon.items():
            if not prons or not all(prons):
                raise ValueError(f"word {word!r} has an empty pronunciation list or an empty pronunciation")
            for phone in (p for pron in prons for p in pron):
                if phone not in ids:
                    raise ValueError(f"phone {phone!r} of word {word!r} is not in the phone set")
            self.pronunciations[word] = [[ids[p] for p in pron] for pron in prons]

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            if word not in self.pronunciations:
                raise ValueError(f"word {word!r} is not in the lexicon")
            ids.extend(self.pronunciations[word][0])
        return ids

    def spellings(self, word: str) -> list[list[int]]:
        """Every pronunciation of `word` (ValueError naming it when it has none)."""
        if word not in self.pronunciations:
            raise ValueError(f"word {word!r} is not in the lexicon")
        return self.pronunciations[word]

    def target_graph(self, text: str) -> graphs.Graph | None:
        """Every pronunciation of every word of `text` (`graphs.alternatives_graph`), when the
        lexicon has variants: `encode`'s first pronunciations are often not what was said (AN4's
        spelled letter A is EY, its first entry AH)."""
        if all(len(prons) == 1 for prons in self.pronunciations.values()):
            return None
        return graphs.alternatives_graph([self.spellings(word) for word in text.split()])

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self._symbols(ids))

    def _save_files(self, directory: Path) -> dict:
        lines = (f"{word} {' '.join(self.tokens[i] for i in pron)}\n"
                 for word, prons in self.pronunciations.items() for pron in prons)
        write_atomic(directory / self.LEXICON_FILE, "".join(lines))
        return {"lexicon": self.LEXICON_FILE}

    @classmethod
    def _load_files(cls, directory: Path, lexicon: str) -> "PhoneTokenizer":
        return cls(read_lexicon(directory / lexicon), read_tokens_txt(directory / TOKENS_FILE)[1:])
