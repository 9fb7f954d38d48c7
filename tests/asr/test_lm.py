"""ARPA reading/writing and the grammar acceptor G, checked against a direct back-off lookup."""

import itertools
import math

import pytest

import graphs
from asr.lm import LN10, NgramLM, grammar_from_arpa, read_arpa, write_arpa

ARPA = """some header text

\\data\\
ngram 1=6
ngram 2=6
ngram 3=3

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.30
-0.60\ta\t-0.20
-0.70\tb\t-0.25
-0.90\tc\t-0.10
-1.20\td

\\2-grams:
-0.20\t<s> a\t-0.15
-0.40\t<s> b
-0.10\ta b\t-0.05
-0.50\tb a
-0.30\tb </s>
-0.25\tc a\t-0.40

\\3-grams:
-0.05\t<s> a b
-0.15\ta b </s>
-0.20\tc a b

\\end\\
"""
WORDS = ["a", "b", "c", "d"]


def reference_path(probs: dict, order: int, sentence: list[str]) -> tuple[list[str], float]:
    """The back-off walk ARPA defines: (labels with "#0" wherever an existing history is dropped,
    log10 p); a history that is not in the model is dropped for free."""
    history, labels, total = ["<s>"], [], 0.0
    for word in [*sentence, "</s>"]:
        context = tuple(history[-(order - 1):])
        while context + (word,) not in probs:
            if context in probs:  # a history with a state in G: backing off takes its #0 arc
                total += probs[context][1] or 0.0
                labels.append("#0")
            context = context[1:]
        total += probs[context + (word,)][0]
        labels.append(word)
        history.append(word)
    return labels, total


@pytest.fixture
def lm(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    return read_arpa(tmp_path / "lm.arpa")


def test_read_arpa(lm):
    assert lm.order == 3 and len(lm.probs) == 15
    assert lm.probs[("a", "b")] == (-0.10, -0.05) and lm.probs[("d",)] == (-1.20, None)
    assert lm.words() == WORDS


def test_g_has_exactly_the_arpa_backoff_path_for_every_sentence(lm):
    backoff = len(WORDS)  # label #0, so the back-off walk is a single, checkable path
    g = grammar_from_arpa(lm, WORDS, backoff_label=backoff)
    for length in range(4):
        for sentence in itertools.product(WORDS, repeat=length):
            labels, log10_prob = reference_path(lm.probs, lm.order, list(sentence))
            assert lm.sentence_log10_prob(sentence) == pytest.approx(log10_prob)
            ids = [backoff if w == "#0" else WORDS.index(w) for w in labels if w != "</s>"]
            path = graphs.compose(graphs.sequence_graph([ids])[0], g)
            assert graphs.forward_score(path).item() == pytest.approx(log10_prob * LN10, abs=1e-5), sentence


def test_with_epsilon_backoff_the_best_path_is_the_arpa_probability(lm):
    g = grammar_from_arpa(lm, WORDS)
    for sentence in [[], ["a"], ["a", "b"], ["b", "a"], ["c", "a", "b"], ["d", "d"]]:
        ids = [WORDS.index(w) for w in sentence]
        best = graphs.viterbi_score(graphs.compose(graphs.sequence_graph([ids])[0], g)).item()
        assert best == pytest.approx(lm.sentence_log10_prob(sentence) * LN10, abs=1e-5), sentence


def test_write_then_read_round_trips(lm, tmp_path):
    write_arpa(lm, tmp_path / "again.arpa")
    again = read_arpa(tmp_path / "again.arpa")
    assert again.order == lm.order and again.probs.keys() == lm.probs.keys()
    for ngram, (p, b) in lm.probs.items():
        q, c = again.probs[ngram]
        assert q == pytest.approx(p) and (b is None) == (c is None) and (b is None or c == pytest.approx(b))


@pytest.mark.parametrize("text, message", [
    (ARPA.replace("-0.50\tb a\n", "-0.50\tb a x y\n"), r"bad.arpa, line 20: a 2-gram line"),
    (ARPA.replace("-0.50\tb a\n", "oops\tb a\n"), r"line 20: not a number"),
    (ARPA.replace("ngram 3=3", "ngram 3=4"), "declares 4 3-grams but the file has 3"),
    (ARPA.replace("\\end\\\n", ""), "no \\\\end\\\\"),
])
def test_malformed_arpa_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.arpa").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_arpa(tmp_path / "bad.arpa")


def test_unigram_model_is_a_loop():
    lm = NgramLM(order=1, probs={("</s>",): (-1.0, None), ("<s>",): (-99.0, None), ("a",): (-0.5, None)})
    g = grammar_from_arpa(lm, ["a"])
    best = graphs.viterbi_score(graphs.compose(graphs.sequence_graph([[0, 0]])[0], g)).item()
    assert best == pytest.approx((-0.5 * 2 - 1.0) * LN10) and math.isfinite(best)
