"""The context graph of hotword phrases: exact scores of matches that complete, fail or
overlap (the phrases and queries of icefall's and sherpa-onnx's context-graph tests, whose
totals are listed there), and strict mode against brute-force counting of occurrences."""

import itertools
import random

import numpy as np
import pytest

from asr.decoding.context import ROOT, ContextGraph

PHRASES = ["S", "HE", "SHE", "SHELL", "HIS", "HERS", "HELLO", "THIS", "THEM"]
QUERIES = ["HEHERSHE", "HERSHE", "HISHE", "SHED", "SHELF", "HELL", "HELLO", "DHRHISQ", "THEN"]
TOTALS = {  # (scores, strict): totals of QUERIES
    ("default", True): [14, 12, 9, 6, 6, 2, 7, 4, 2],
    ("default", False): [7, 5, 5, 3, 3, 2, 2, 3, 2],
    ("5", True): [35.84, 30.84, 24.18, 18.34, 18.34, 5, 13, 10.84, 5],
    ("5", False): [20, 15, 10.84, 10, 10, 5, 5, 5.84, 5],
}


def walk(graph, query, strict):
    """Total score of a query fed token by token from the root, then finalized."""
    state, total = np.array([ROOT]), 0.0
    for char in query:
        score, state = graph.step(state, np.array([ord(char)]), strict)
        total += float(score[0])
    return total + float(graph.finalize(state)[0])


@pytest.mark.parametrize("scores, strict", list(TOTALS))
def test_totals_of_completed_failed_and_overlapping_matches(scores, strict):
    per_token = None if scores == "default" else [round(5 / len(p), 2) for p in PHRASES]
    graph = ContextGraph.build([[ord(c) for c in p] for p in PHRASES], 128, per_token)
    got = [walk(graph, query, strict) for query in QUERIES]
    np.testing.assert_allclose(got, TOTALS[scores, strict], atol=1e-9)


def test_a_batch_of_states_steps_as_each_one_alone():
    graph = ContextGraph.build([[ord(c) for c in p] for p in PHRASES], 128)
    rng = random.Random(0)
    queries = ["".join(rng.choice("SHEILOTMRD") for _ in range(12)) for _ in range(50)]
    for strict in (True, False):
        states, totals = np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries))
        for position in range(12):
            scores, states = graph.step(states, np.array([ord(q[position]) for q in queries]), strict)
            totals += scores
        totals += graph.finalize(states)
        np.testing.assert_allclose(totals, [walk(graph, q, strict) for q in queries], atol=1e-9)


def test_strict_totals_count_every_occurrence_of_every_phrase():
    """Brute force: each occurrence of a phrase anywhere in the query pays the phrase's bonus
    (its tokens' scores), however the occurrences overlap."""
    rng = random.Random(1)
    for trial in range(30):
        phrases = sorted({"".join(rng.choice("ABC") for _ in range(rng.randint(1, 4))) for _ in range(6)})
        scores = [rng.choice([0, 0.5, 2.0]) for _ in phrases]
        graph = ContextGraph.build([[ord(c) - 65 for c in p] for p in phrases], 3, scores)
        worth = {}
        for phrase, score in zip(phrases, scores):  # a shared prefix token is worth the most any phrase gives it
            for k in range(1, len(phrase) + 1):
                worth[phrase[:k]] = max(worth.get(phrase[:k], 0.0), score or 1.0)
        for query in ("".join(q) for q in itertools.islice(itertools.product("ABC", repeat=6), trial, None, 37)):
            expected = sum(sum(worth[p[:k]] for k in range(1, len(p) + 1))
                           for p in phrases for start in range(len(query)) if query.startswith(p, start))
            total, state = 0.0, np.array([ROOT])
            for char in query:
                score, state = graph.step(state, np.array([ord(char) - 65]), strict=True)
                total += float(score[0])
            assert total + float(graph.finalize(state)[0]) == pytest.approx(expected), (phrases, scores, query)


def test_bad_phrases_are_named():
    with pytest.raises(ValueError, match="phrase 1 is empty"):
        ContextGraph.build([[1], []], 5)
    with pytest.raises(ValueError, match="phrase 0: token 7 is not in 0..4"):
        ContextGraph.build([[7]], 5)
    with pytest.raises(ValueError, match="2 scores for 1 phrases"):
        ContextGraph.build([[1]], 5, [1.0, 2.0])


def test_hotwords_files_are_read_as_sherpa_onnx_reads_them(tmp_path):
    from asr.decoding.context import hotword_graph, read_hotwords

    path = tmp_path / "hotwords.txt"
    path.write_text("HELLO WORLD\n\n  I LOVE YOU :2.0\nSHE :0\n")
    hotwords = read_hotwords(path)
    assert hotwords == [("HELLO WORLD", None), ("I LOVE YOU", 2.0), ("SHE", 0.0)]
    graph = hotword_graph(hotwords, lambda text: [ord(c) for c in text], 128, default_score=1.5)
    she = [ord(c) for c in "SHE"]
    assert walk(graph, "I LOVE YOU", strict=False) == pytest.approx(2.0 * 10)  # its own score per token
    assert float(graph.step(np.array([ROOT]), np.array([she[0]]))[0][0]) == pytest.approx(1.5)  # :0 is the default
    for text, message in (("SPEECH :2.0 RECOGNITION\n", "line 1: expected 'WORDS"), ("A :x\n", "':SCORE'"),
                          (":1.0\n", "line 1: expected 'WORDS")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_hotwords(path)
    with pytest.raises(ValueError, match="hotword 'Q' cannot be spelled"):
        hotword_graph([("Q", None)], lambda text: (_ for _ in ()).throw(ValueError("no Q")), 128, 1.0)
