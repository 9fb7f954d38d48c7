"""Tokenizers: round trips on AN4 (or synthetic) text, the blank never encoded, save/load,
the AN4 dictionary, and tokens.txt / words.txt files with their errors."""

import re
from pathlib import Path

import pytest

from asr.tokenizer import (
    BLANK,
    BPETokenizer,
    CharTokenizer,
    PhoneTokenizer,
    Tokenizer,
    read_lexicon,
    read_tokens_txt,
    read_words_txt,
    write_tokens_txt,
    write_words_txt,
)
from graphs import EPSILON, SymbolTable
from tests.graphs.brute import string_weights

AN4 = Path(__file__).parents[2].parent / "shared" / "data" / "an4" / "etc"
needs_an4 = pytest.mark.skipif(not AN4.is_dir(), reason=f"AN4 data not found at {AN4} (../shared is absent)")

SYNTHETIC = ["the cat sat on the mat", "a dog", "cats and dogs", "the end", "o'clock is not a word"]
SYNTHETIC_LEXICON = {"the": [["DH", "AH"], ["DH", "IY"]], "cat": [["K", "AE", "T"]], "a": [["AH"], ["EY"]],
                     "dog": [["D", "AO", "G"]]}


def an4_texts() -> list[str]:
    """AN4 training transcripts without `<s>`, `</s>` and the utterance id."""
    lines = (AN4 / "an4_train.transcription").read_text().splitlines()
    return [" ".join(w for w in line.rsplit(" (", 1)[0].split() if w not in ("<s>", "</s>")) for line in lines]


@pytest.fixture(params=["synthetic", "an4"])
def texts(request):
    if request.param == "synthetic":
        return SYNTHETIC
    if not AN4.is_dir():
        pytest.skip(f"AN4 data not found at {AN4} (../shared is absent)")
    return an4_texts()


def check_round_trips(tokenizer: Tokenizer, texts, tmp_path, expected=lambda text: " ".join(text.split())):
    """Every text decodes back to `expected(text)`, encode never yields the blank, and a
    saved-and-loaded tokenizer (by its class and through `Tokenizer.load`) encodes the same."""
    assert tokenizer.tokens[0] == BLANK and tokenizer.vocab_size == len(tokenizer.tokens)
    encoded = [tokenizer.encode(text) for text in texts]
    for text, ids in zip(texts, encoded):
        assert ids and min(ids) >= 1 and max(ids) < tokenizer.vocab_size
        assert tokenizer.decode(ids) == expected(text)
        assert tokenizer.decode([0, *(i for j in ids for i in (j, 0))]) == expected(text)  # blanks skipped
    tokenizer.save(tmp_path / "saved")
    for loader in (type(tokenizer), Tokenizer):
        loaded = loader.load(tmp_path / "saved")
        assert type(loaded) is type(tokenizer) and loaded.tokens == tokenizer.tokens
        assert [loaded.encode(text) for text in texts] == encoded
    assert read_tokens_txt(tmp_path / "saved" / "tokens.txt") == tokenizer.tokens
    assert not list((tmp_path / "saved").glob(".*.tmp"))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([tokenizer.vocab_size])


# --------------------------------------------------------------------------- characters
def test_char_round_trips(texts, tmp_path):
    tokenizer = CharTokenizer.build(texts)
    assert tokenizer.tokens[:2] == [BLANK, "|"]
    check_round_trips(tokenizer, texts, tmp_path)


def test_char_layout_and_errors():
    tokenizer = CharTokenizer.build(["ab ba", "c"], word_separator="▁", letter_words=False)
    assert tokenizer.tokens == [BLANK, "▁", "a", "b", "c"]
    assert tokenizer.encode("  ab  c ") == [2, 3, 1, 4]
    assert tokenizer.decode([1, 2, 1, 1, 0, 3, 1]) == "a b"
    with pytest.raises(ValueError, match="character 'z' \\(in 'az'\\)"):
        tokenizer.encode("az")
    with pytest.raises(ValueError, match="character '▁'"):
        tokenizer.encode("a▁b")
    with pytest.raises(ValueError, match="word separator's character '|'"):
        CharTokenizer.build(["a|b"])
    with pytest.raises(ValueError, match="without whitespace"):
        CharTokenizer.build(["ab"], word_separator=" ")
    assert CharTokenizer.build([]).encode("") == []


def test_letters_standing_alone_have_tokens_of_their_own(tmp_path):
    """A one-letter word of a cased alphabet found alone in training gets its own token; a
    letter seen only inside words, a digit and an uncased character stay character tokens."""
    tokenizer = CharTokenizer.build(["P I T T", "PIT 7 Z00 猫", "Ω"])
    assert tokenizer.tokens == [BLANK, "|", "0", "7", "I", "P", "T", "Z", "Ω", "猫", "|I|", "|P|", "|T|", "|Ω|"]
    letter = {t[1:-1]: i for i, t in enumerate(tokenizer.tokens) if len(t) == 3}
    char = {t: i for i, t in enumerate(tokenizer.tokens)}
    assert tokenizer.encode("P I T") == [letter["P"], 1, letter["I"], 1, letter["T"]]
    assert tokenizer.encode("PIT Z 7 猫") == [char["P"], char["I"], char["T"], 1, char["Z"], 1, char["7"], 1, char["猫"]]
    assert tokenizer.spellings("T") == [[letter["T"], 1], [letter["T"]]]
    # a letter word decodes as a word even when a greedy search puts no separator around it
    assert tokenizer.decode([char["P"], letter["I"], 0, char["T"]]) == "P I T"
    check_round_trips(tokenizer, ["P I T T", "PIT 7 Z00 猫", "Ω P"], tmp_path)
    plain = CharTokenizer.build(["P I T T"], letter_words=False)
    assert plain.tokens == [BLANK, "|", "I", "P", "T"] and plain.encode("P I") == [3, 1, 2]


# --------------------------------------------------------------------------- sentencepiece
def test_bpe_round_trips(texts, tmp_path):
    vocab_size = 100 if len(texts) > 100 else 30
    tokenizer = BPETokenizer.train(iter(texts), vocab_size, tmp_path / "bpe")
    assert tokenizer.vocab_size == vocab_size
    assert tokenizer.tokens[:2] == [BLANK, "<unk>"]
    assert BPETokenizer.load(tmp_path / "bpe").tokens == tokenizer.tokens
    check_round_trips(tokenizer, texts, tmp_path)


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_bpe_training_is_deterministic_and_keeps_unk(tmp_path, model_type):
    first = BPETokenizer.train(SYNTHETIC, 25, tmp_path / "a", model_type=model_type)
    second = BPETokenizer.train(list(SYNTHETIC), 25, tmp_path / "b", model_type=model_type)
    assert (tmp_path / "a" / "bpe.model").read_bytes() == (tmp_path / "b" / "bpe.model").read_bytes()
    assert first.tokens == second.tokens
    ids = first.encode("the zebra")
    assert 1 in ids and 0 not in ids  # an unseen character is <unk> (id 1), never the blank
    assert "⁇" in first.decode(ids)


def test_bpe_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size 500 \\(499 pieces \\+ the blank\\)"):
        BPETokenizer.train(SYNTHETIC, 500, tmp_path / "big")
    with pytest.raises(ValueError, match="model_type"):
        BPETokenizer.train(SYNTHETIC, 30, tmp_path / "x", model_type="word")
    CharTokenizer.build(SYNTHETIC).save(tmp_path / "char")
    with pytest.raises(ValueError, match="holds a 'char' tokenizer, not 'bpe'"):
        BPETokenizer.load(tmp_path / "char")


# --------------------------------------------------------------------------- phones
def test_phone_round_trips_synthetic(tmp_path):
    tokenizer = PhoneTokenizer(SYNTHETIC_LEXICON)
    assert tokenizer.tokens == [BLANK, "AE", "AH", "AO", "D", "DH", "EY", "G", "IY", "K", "T"]
    assert tokenizer.encode("the cat") == [5, 2, 9, 1, 10]  # first pronunciation of "the"
    assert tokenizer.pronunciations["the"] == [[5, 2], [5, 8]]
    texts = ["the cat", "a dog", "the a"]
    check_round_trips(tokenizer, texts, tmp_path, lambda text: " ".join(
        " ".join(SYNTHETIC_LEXICON[w][0]) for w in text.split()))
    with pytest.raises(ValueError, match="word 'zebra' is not in the lexicon"):
        tokenizer.encode("the zebra")
    with pytest.raises(ValueError, match="phone 'K' of word 'cat' is not in the phone set"):
        PhoneTokenizer(SYNTHETIC_LEXICON, phones=["DH", "AH", "IY"])


def test_phone_target_graph_spells_every_pronunciation_and_only_when_there_are_variants():
    tokenizer = PhoneTokenizer(SYNTHETIC_LEXICON)
    graph = tokenizer.target_graph("the cat a")
    accepted = {inputs for inputs, _ in string_weights(graph)}
    spell = tokenizer.pronunciations
    assert accepted == {tuple(t + spell["cat"][0] + a) for t in spell["the"] for a in spell["a"]}
    assert tokenizer.target_graph("cat") is not None  # one graph per batch kind: the lexicon has variants
    single = PhoneTokenizer({"cat": [["K", "AE", "T"]], "dog": [["D", "AO", "G"]]})
    assert single.target_graph("cat dog") is None  # encode is the only spelling: plain CTC targets
    assert CharTokenizer.build(SYNTHETIC).target_graph("the cat") is None


@needs_an4
def test_an4_lexicon_and_phone_round_trips(tmp_path):
    lexicon = read_lexicon(AN4 / "an4.dic")
    lines = [line for line in (AN4 / "an4.dic").read_text().splitlines() if line.strip()]
    variants = sum(bool(re.match(r"\S+\(\d+\)\s", line)) for line in lines)
    assert variants == 29  # lines such as "A(2)  EY"
    assert len(lexicon) == len(lines) - variants
    assert sum(len(prons) for prons in lexicon.values()) == len(lines)
    assert lexicon["A"] == [["AH"], ["EY"]] and lexicon["AUGUST"] == [["AA", "G", "AH", "S", "T"], ["AO", "G", "AH", "S", "T"]]

    phones = (AN4 / "an4.phone").read_text().split()
    tokenizer = PhoneTokenizer(lexicon, phones)
    assert tokenizer.tokens == [BLANK, *phones]  # SIL included although no word uses it
    texts = an4_texts()
    check_round_trips(tokenizer, texts, tmp_path, lambda text: " ".join(
        " ".join(lexicon[w][0]) for w in text.split()))
    with pytest.raises(ValueError, match="word 'HELLO' is not in the lexicon"):
        tokenizer.encode("YES HELLO")


def test_read_lexicon_formats_and_errors(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text(";;; a comment\nA  AH\nA(2) EY\nA EY\nB B IY\n\nB  B IH\n")
    assert read_lexicon(path) == {"A": [["AH"], ["EY"]], "B": [["B", "IY"], ["B", "IH"]]}
    path.write_text("A AH\nB\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, line 2: word 'B' has no pronunciation"):
        read_lexicon(path)


# --------------------------------------------------------------------------- symbol files
def test_tokens_txt_round_trip(tmp_path):
    tokens = [BLANK, "▁the", "a", "<unk>", "'"]
    write_tokens_txt(tokens, tmp_path / "tokens.txt")
    assert (tmp_path / "tokens.txt").read_text().splitlines()[:2] == ["<blk> 0", "▁the 1"]
    assert read_tokens_txt(tmp_path / "tokens.txt") == tokens
    for bad, message in [(["a", BLANK], "tokens\\[0\\]"), ([BLANK, "a", "a"], "not unique"),
                         ([BLANK, "a b"], "without whitespace")]:
        with pytest.raises(ValueError, match=message):
            write_tokens_txt(bad, tmp_path / "bad.txt")
    assert not (tmp_path / "bad.txt").exists()


@pytest.mark.parametrize("text, line, message", [
    ("<blk> 0\na 1\nb\n", 3, "expected 'symbol id'"),
    ("<blk> 0\na one\n", 2, "id 'one' is not an integer"),
    ("<blk> 0\na 1\na 2\n", 3, "symbol 'a' already has id 1"),
    ("<blk> 0\na 1\n\nb 1\n", 4, "id 1 already belongs to 'a'"),
    ("<blk> 0\na 1\nb 3\n", 3, "expected id 2, got 3"),
    ("<eps> 0\na 1\n", 1, "id 0 must be '<blk>'"),
])
def test_tokens_txt_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "tokens.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, line {line}: .*{re.escape(message)}"):
        read_tokens_txt(path)


def test_words_txt_round_trip_and_symbol_table(tmp_path):
    words = ["<UNK>", "A", "AND", "ZERO"]
    path = tmp_path / "words.txt"
    write_words_txt(words, path)
    assert path.read_text().splitlines() == ["<eps> 0", "<UNK> 1", "A 2", "AND 3", "ZERO 4", "#0 5", "<s> 6", "</s> 7"]
    assert read_words_txt(path) == words
    table = SymbolTable.read(path)
    assert table.label("<eps>") == EPSILON
    assert [table.label(w) for w in words] == [0, 1, 2, 3]  # OpenFst id k is our label k - 1
    assert table.label("</s>") == 6
    with pytest.raises(ValueError, match="reserved"):
        write_words_txt(["A", "<s>"], path)
    with pytest.raises(ValueError, match="listed twice"):
        write_words_txt(["A", "A"], path)


@pytest.mark.parametrize("text, line", [
    ("<eps> 0\nA 1\n#0 2\n<s> 3\n", 3),
    ("<eps> 0\nA 1\n<s> 2\nB 3\n#0 4\n</s> 5\n", 3),
    ("<eps> 0\n", 1),
])
def test_words_txt_layout_errors(tmp_path, text, line):
    path = tmp_path / "words.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, line {line}: .*must end with"):
        read_words_txt(path)


def test_spellings_cover_how_each_tokenizer_writes_a_word_inside_a_sentence():
    chars = CharTokenizer.build(["the cat"])
    the = chars.encode("the")
    assert chars.spellings("the") == [the + [1], the]  # followed by the separator, or last
    phones = PhoneTokenizer({"A": [["a"], ["a", "h"]]})
    assert phones.spellings("A") == phones.pronunciations["A"]
    with pytest.raises(ValueError, match="'B' is not in the lexicon"):
        phones.spellings("B")
    # the symbol lexicon HLG is built from: every pronunciation, words it cannot spell left out
    assert phones.lexicon(["A", "B"]) == {"A": [["a"], ["a", "h"]]}
    assert chars.lexicon(["the", "dog"]) == {"the": [["t", "h", "e", chars.tokens[1]], ["t", "h", "e"]]}


def test_word_spellings_concatenate_to_the_sentence_encoding_so_lexicon_graphs_match_training(tmp_path):
    """A BPE or character lexicon built from `spellings` spells a sentence exactly as the model
    was trained to emit it (pieces never cross a word boundary)."""
    bpe = BPETokenizer.train(SYNTHETIC, 25, tmp_path / "bpe")
    chars = CharTokenizer.build(SYNTHETIC)
    for sentence in list(SYNTHETIC)[:20]:
        words = sentence.split()
        assert [t for w in words for t in bpe.spellings(w)[0]] == bpe.encode(sentence)
        # characters: every word but the last is followed by the separator
        spelled = [t for w in words[:-1] for t in chars.spellings(w)[0]] + chars.spellings(words[-1])[1]
        assert spelled == chars.encode(sentence)
