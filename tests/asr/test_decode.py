"""Greedy CTC and Viterbi word decoding against brute force."""

import itertools

import pytest
import torch

import graphs
from asr.decoding import force_align, greedy_ctc, viterbi_words
from asr.lang import compose_hlg


def collapse(path, blank=0):
    return [t for i, t in enumerate(path) if t != blank and (i == 0 or path[i - 1] != t)]


def test_greedy_ctc_collapses_repeats_and_blanks_within_each_length():
    log_probs = torch.full((2, 6, 3), -10.0)
    for b, path in enumerate([[1, 1, 0, 1, 2, 2], [0, 2, 2, 1, 1, 1]]):
        log_probs[b, torch.arange(6), torch.tensor(path)] = 0.0
    assert greedy_ctc(log_probs, [6, 4]) == [[1, 1, 2], [2, 1]]


def test_lexicon_graph_maps_pronunciations_to_words():
    lexicon = graphs.lexicon_graph([(0, [1, 2]), (1, [3]), (0, [2, 2])])
    relation = {}
    for tokens in ([1, 2], [3], [2, 2], [1, 2, 3], [3, 2, 2]):
        path = graphs.compose(graphs.sequence_graph([tokens])[0], lexicon)
        outs = graphs.nbest(path, 5)
        relation[tuple(tokens)] = sorted(tuple(a[3] for a in p.arcs() if a[3] != graphs.EPSILON) for p in outs)
    assert relation == {(1, 2): [(0,)], (3,): [(1,)], (2, 2): [(0,)], (1, 2, 3): [(0, 1)], (3, 2, 2): [(1, 0)]}
    with pytest.raises(ValueError, match="empty pronunciation"):
        graphs.lexicon_graph([(0, [])])


def test_viterbi_words_is_the_best_allowed_word_sequence():
    # Words 0 = "yes" (tokens 1 2), 1 = "no" (token 3); grammar: exactly two words.
    pronunciations = [(0, [1, 2]), (1, [3])]
    grammar = graphs.Graph.from_arrays([0, 0, 1, 1], [1, 1, 2, 2], [0, 1, 0, 1], start=[0], accept=[2])
    hlg = compose_hlg(4, pronunciations, grammar)
    torch.manual_seed(0)
    log_probs = torch.randn(3, 6, 4, dtype=torch.float64).log_softmax(-1)
    lengths = [6, 5, 3]
    words, alignment = viterbi_words(log_probs, lengths, hlg)
    scores = alignment.score
    spelled = {(0,): [1, 2], (1,): [3]}
    for b in range(3):
        best, best_words = float("-inf"), None
        for path in itertools.product(range(4), repeat=lengths[b]):
            tokens = collapse(list(path))
            for sentence in itertools.product([0, 1], repeat=2):
                if tokens == spelled[(sentence[0],)] + spelled[(sentence[1],)]:
                    score = sum(log_probs[b, t, l].item() for t, l in enumerate(path))
                    if score > best:
                        best, best_words = score, list(sentence)
        assert words[b] == best_words
        assert scores[b].item() == pytest.approx(best)


def peaked(paths, num_tokens, low=-8.0):
    """Log-probs [B, T, V] whose best label at each frame is paths[b][t] (all paths equally long)."""
    log_probs = torch.full((len(paths), len(paths[0]), num_tokens), low, dtype=torch.float64)
    for b, path in enumerate(paths):
        log_probs[b, torch.arange(len(path)), torch.tensor(path)] = 0.0
    return log_probs.log_softmax(-1)


def test_force_align_finds_word_times_and_the_better_pronunciation():
    # utterance 0: word 0 = tokens 1 2 (frames 1-3), word 1 = token 3 or 1 (frames 5-6)
    # utterance 1: the same words with a silence in the middle, shorter
    log_probs = peaked([[0, 1, 2, 2, 0, 3, 3, 0], [1, 2, 0, 0, 3, 0, 0, 0]], 4)
    words = [[[1, 2]], [[3], [1]]]
    spans, alignment = force_align(log_probs, [8, 6], [words, words])
    assert spans == [[(1, 3), (5, 6)], [(0, 1), (4, 4)]]
    assert alignment.labels[0].tolist() == [0, 1, 2, 2, 0, 3, 3, 0]
    # the score is the CTC Viterbi score of the chosen token sequence
    best = graphs.align_dense(log_probs[:1], [8], graphs.ctc_graph([[1, 2, 3]])[0].to(dtype=torch.float64)).score
    assert torch.allclose(alignment.score[0], best[0])


def test_force_align_reports_transcripts_that_cannot_fit():
    log_probs = peaked([[1, 1, 1]], 4)
    spans, alignment = force_align(log_probs, [3], [[[[1]], [[1]], [[1]]]])  # 1 _ 1 _ 1 needs 5 frames
    assert alignment.score[0] == float("-inf") and spans == [[]]
    spans, alignment = force_align(log_probs, [3], [[]])  # nothing said: all blank
    assert spans == [[]] and torch.isfinite(alignment.score[0])
