"""ArpaTable: sentence scores equal NgramLM's (the dict reader) on the same ARPA file, through
.gz, save/load and the cache; malformed files are refused with their line."""

import gzip
import math
import os

import numpy as np
import pytest

from asr.arpa_table import ArpaTable
from asr.lm import estimate_kneser_ney, read_arpa, write_arpa


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    """A Kneser-Ney 4-gram of a random Markov text over 30 words, written as ARPA."""
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(30)]
    successors = rng.integers(0, 30, size=(30, 3))
    sentences = []
    for _ in range(400):
        word, sentence = int(rng.integers(30)), []
        for _ in range(int(rng.integers(1, 12))):
            sentence.append(vocabulary[word])
            word = int(successors[word, rng.integers(3)]) if rng.random() < 0.7 else int(rng.integers(30))
        sentences.append(sentence)
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    write_arpa(estimate_kneser_ney(sentences, order=4), path)
    return path, vocabulary


def random_sentences(vocabulary, count=200, seed=1):
    rng = np.random.default_rng(seed)
    pool = [*vocabulary, "unheard"]  # one word outside the model
    return [[pool[i] for i in rng.integers(0, len(pool) - int(k % 5 != 0), size=int(rng.integers(0, 15)))]
            for k in range(count)]


def assert_same_scores(table, lm, sentences):
    for sentence in sentences:
        expected, got = lm.sentence_log10_prob(sentence), table.sentence_log10_prob(sentence)
        assert (math.isinf(expected) and got == expected) or abs(got - expected) < 1e-4, sentence


def test_sentence_scores_equal_the_dict_reader_with_back_off_and_unknown_words(arpa):
    path, vocabulary = arpa
    lm, table = read_arpa(path), ArpaTable.read(path)
    assert table.order == 4 and len(table) == len(lm.probs)
    sentences = random_sentences(vocabulary)
    assert any(math.isinf(lm.sentence_log10_prob(s)) for s in sentences)  # "unheard" scores -inf in both
    assert_same_scores(table, lm, sentences)


def test_gzip_save_load_and_cache_give_the_same_table(arpa, tmp_path, monkeypatch):
    path, vocabulary = arpa
    packed = tmp_path / "lm.arpa.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    lm, table = read_arpa(path), ArpaTable.read(packed)
    table.save(tmp_path / "lm.npz")
    assert_same_scores(ArpaTable.load(tmp_path / "lm.npz"), lm, random_sentences(vocabulary, 50, seed=2))
    cache = tmp_path / "cache" / "lm.npz"
    assert ArpaTable.cached(packed, cache, progress=False).words == table.words and cache.is_file()
    parsed = []
    monkeypatch.setattr(ArpaTable, "read", classmethod(lambda cls, p, progress=False: parsed.append(p) or table))
    ArpaTable.cached(packed, cache, progress=False)
    assert parsed == []  # the cache is newer than the ARPA file: loaded
    os.utime(cache, (0, 0))
    ArpaTable.cached(packed, cache, progress=False)
    assert parsed == [packed]  # older: parsed again


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("\\end\\", ""), "no \\\\end\\\\"),
    (lambda text: text.replace("\n\\2-grams:\n", "\n\\2-grams:\n-1.0\tw1 nosuchword\n", 1), "nosuchword"),
    (lambda text: text.replace("\n\\2-grams:\n", "\n\\2-grams:\n-1.0\tw1\n", 1), r"line \d+: expected \d+ 2-grams"),
    (lambda text: text.replace("\n\\3-grams:\n", "\n\\3-grams:\nabc\tw1 w2 w3\n", 1), "not a number"),
])
def test_malformed_files_are_refused_with_their_line(arpa, tmp_path, edit, message):
    path, _ = arpa
    bad = tmp_path / "bad.arpa"
    bad.write_text(edit(path.read_text()))
    with pytest.raises(ValueError, match=message):
        ArpaTable.read(bad)


def test_an_ngram_whose_prefix_is_missing_is_refused_by_number(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=3\nngram 2=1\nngram 3=1\n\n\\1-grams:\n-1\t<s>\t-0.5\n-1\t</s>\n-1\ta\t-0.3\n\n"
                   "\\2-grams:\n-0.5\t<s> a\n\n\\3-grams:\n-0.2\ta a </s>\n\n\\end\\\n")
    with pytest.raises(ValueError, match="3-gram number 1 has a 2-word prefix"):
        ArpaTable.read(bad)
