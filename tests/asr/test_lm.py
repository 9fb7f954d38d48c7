"""ARPA reading/writing and the grammar acceptor G, checked against a direct back-off lookup."""

import gzip
import itertools
import math
import random
from collections import Counter

import pytest

import graphs
from asr.lm import LN10, NgramLM, estimate_kneser_ney, grammar_from_arpa, read_arpa, write_arpa

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
    with gzip.open(tmp_path / "again.arpa.gz", "wt", encoding="utf-8") as f:  # as openslr ships LibriSpeech's
        f.write((tmp_path / "again.arpa").read_text())
    assert read_arpa(tmp_path / "again.arpa.gz").probs == again.probs


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


CORPUS = ["san francisco is foggy", "the city of san francisco", "the fog is in the city",
          "a city is a city", "in the fog the city is gray", "the city and the fog", "gray is the fog"]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_distributions_sum_to_one_for_every_history(order):
    lm = estimate_kneser_ney([s.split() for s in CORPUS], order=order)
    vocabulary = lm.words() + ["</s>"]
    assert "<unk>" in vocabulary and "san" in vocabulary
    histories = [ngram for ngram in lm.probs if len(ngram) < order and ngram[-1] != "</s>"] + [("<s>",), ()]
    for history in histories:
        total = sum(10 ** lm.log10_prob(w, history) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-9), history


def chen_goodman_discounts(counts) -> dict[int, float]:
    """D1, D2, D3+ of Chen & Goodman from count-of-counts, clamped to [0.1, k] like estimate_kneser_ney."""
    t = Counter(min(c, 4) for c in counts)
    y = t[1] / (t[1] + 2 * t[2])
    d = {1: 1 - 2 * y * t[2] / t[1], 2: 2 - 3 * y * t[3] / t[2], 3: 3 - 4 * y * t[4] / t[3] if t[3] else 3.0}
    return {k: min(k, max(0.1, v)) for k, v in d.items()}


def test_kneser_ney_probabilities_follow_the_formulas_on_known_counts():
    lm = estimate_kneser_ney([s.split() for s in CORPUS], order=2)
    bigrams, left_contexts = Counter(), {}
    for s in CORPUS:
        tokens = ["<s>", *s.split(), "</s>"]
        bigrams.update(zip(tokens, tokens[1:]))
        for a, b in zip(tokens, tokens[1:]):
            left_contexts.setdefault(b, set()).add(a)
    # Unigrams (the back-off distribution) come from continuation counts: "francisco" occurs
    # twice but only ever after "san" (1 left context), "gray" twice after "is" and <s> (2).
    a = {w: len(c) for w, c in left_contexts.items()}
    assert a["francisco"] == 1 and a["gray"] == 2
    d = chen_goodman_discounts(a.values())
    total, mass = sum(a.values()), sum(d[min(c, 3)] for c in a.values())
    vocabulary = len(a) + 1  # the words, </s> and <unk>; <s> is never predicted
    unigram = {w: (a[w] - d[min(a[w], 3)]) / total + mass / total / vocabulary for w in a}
    for word in ("francisco", "gray", "city", "</s>"):
        assert 10 ** lm.probs[(word,)][0] == pytest.approx(unigram[word])
    assert 10 ** lm.probs[("<unk>",)][0] == pytest.approx(mass / total / vocabulary)
    # Bigrams, the highest order: raw counts, interpolated with the unigrams.
    d = chen_goodman_discounts(bigrams.values())
    after_the = {b: c for (a_, b), c in bigrams.items() if a_ == "the"}
    total, mass = sum(after_the.values()), sum(d[min(c, 3)] for c in after_the.values())
    assert 10 ** lm.probs[("the",)][1] == pytest.approx(mass / total)  # back-off weight of "the"
    for word, count in after_the.items():
        expected = (count - d[min(count, 3)]) / total + mass / total * unigram[word]
        assert 10 ** lm.probs[("the", word)][0] == pytest.approx(expected)
    assert lm.log10_prob("francisco", ["san"]) > lm.probs[("francisco",)][0] + 0.3  # context helps


def test_kneser_ney_model_round_trips_through_arpa_and_scores_sentences(tmp_path):
    lm = estimate_kneser_ney([s.split() for s in CORPUS], order=3)
    write_arpa(lm, tmp_path / "kn.arpa")
    again = read_arpa(tmp_path / "kn.arpa")
    for sentence in ["the city is foggy", "san francisco", "gray fog in the city", "unknown words here"]:
        words = [w if w in lm.words() else "<unk>" for w in sentence.split()]
        assert again.sentence_log10_prob(words) == pytest.approx(lm.sentence_log10_prob(words), abs=1e-4)
        assert math.isfinite(lm.sentence_log10_prob(words))


def test_asr_lm_command_writes_a_readable_arpa(tmp_path, capsys):
    from asr import cli

    (tmp_path / "text").write_text("".join(f"utt{i} {s}\n" for i, s in enumerate(CORPUS)))
    assert cli.main(["lm", str(tmp_path / "text"), "--kaldi-text", "--order", "3", "-o", str(tmp_path / "lm.arpa")]) == 0
    lm = read_arpa(tmp_path / "lm.arpa")
    expected = estimate_kneser_ney([s.split() for s in CORPUS], order=3)
    assert lm.order == 3 and lm.probs.keys() == expected.probs.keys()
    assert "3-grams" in capsys.readouterr().err
    assert cli.main(["lm", str(tmp_path / "missing"), "-o", str(tmp_path / "x.arpa")]) == 2


def test_arpa_writer_output_loads_in_kaldis_arpa2fst_and_openfst_agrees_on_path_weights(tmp_path):
    """Our ARPA file through Kaldi's arpa2fst (kaldilm) into OpenFst: each sentence's best path
    cost there equals the ARPA probability, and our own G's best path, for an estimated trigram."""
    kaldilm = pytest.importorskip("kaldilm")
    fst = pytest.importorskip("pywrapfst")
    from asr.tokenizer import write_words_txt

    rng = random.Random(0)
    vocabulary = ["w%d" % i for i in range(12)]
    model = estimate_kneser_ney([[rng.choice(vocabulary) for _ in range(rng.randint(1, 6))] for _ in range(80)], 3)
    write_arpa(model, tmp_path / "lm.arpa")
    words = model.words()
    write_words_txt(words, tmp_path / "words.txt")  # word i has OpenFst id i + 1
    text = kaldilm.arpa2fst(str(tmp_path / "lm.arpa"), read_symbol_table=str(tmp_path / "words.txt"))
    compiler = fst.Compiler()
    compiler.write(text)
    openfst_g = compiler.compile()
    openfst_g.arcsort("ilabel")
    ours = grammar_from_arpa(model, words)
    sentences = [[rng.choice(vocabulary) for _ in range(rng.randint(0, 5))] for _ in range(40)]
    symbol_id = {line.split()[0]: int(line.split()[1]) for line in (tmp_path / "words.txt").read_text().splitlines()}
    for sentence in sentences:
        ids = [words.index(w) for w in sentence]
        # without a disambiguation symbol, arpa2fst keeps <s> and </s> as arcs: spell them out
        labels = [symbol_id["<s>"], *(i + 1 for i in ids), symbol_id["</s>"]]
        acceptor = fst.VectorFst()
        states = [acceptor.add_state() for _ in range(len(labels) + 1)]
        acceptor.set_start(states[0])
        acceptor.set_final(states[-1])
        one = fst.Weight.one(acceptor.weight_type())
        for i, label in enumerate(labels):
            acceptor.add_arc(states[i], fst.Arc(label, label, one, states[i + 1]))
        path = fst.compose(acceptor, openfst_g)
        cost = float(fst.shortestdistance(path, reverse=True)[path.start()]) if path.start() >= 0 else math.inf
        expected = model.sentence_log10_prob(sentence) * LN10
        assert -cost == pytest.approx(expected, abs=1e-3), sentence
        best = graphs.viterbi_score(graphs.compose(graphs.sequence_graph([ids])[0], ours)).item()
        assert best == pytest.approx(expected, abs=1e-4), sentence


def test_graphs_builds_g_straight_from_an_arpa_file(lm, tmp_path):
    """`graphs.grammar_from_arpa` (the engine's public name) reads the file itself; words default
    to the LM's vocabulary in file order."""
    from_file = graphs.grammar_from_arpa(tmp_path / "lm.arpa")
    assert graphs.equal(from_file, grammar_from_arpa(lm, WORDS))
