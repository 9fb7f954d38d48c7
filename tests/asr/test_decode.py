"""Greedy CTC and Viterbi word decoding against brute force."""

import itertools

import pytest
import torch

import graphs
from asr.decode import decoding_graph, greedy_ctc, viterbi_words


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
    hlg = decoding_graph(4, pronunciations, grammar)
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
