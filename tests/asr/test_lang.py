"""Kaldi-style disambiguation symbols and their removal."""

import itertools

import torch

import graphs
from asr.lang import add_disambig_symbols, remove_disambig


def test_prefixes_homophones_and_empty_pronunciations_get_symbols_as_kaldi_assigns_them():
    lexicon = [("A", ["a"]), ("AB", ["a", "b"]), ("BC1", ["b", "c"]), ("BC2", ["b", "c"]), ("BC3", ["b", "c"]),
               ("SIL", []), ("ABC", ["a", "b", "c", "d"]), ("X", ["x"])]
    marked, largest = add_disambig_symbols(lexicon)
    assert marked == [("A", ["a", "#1"]), ("AB", ["a", "b", "#1"]), ("BC1", ["b", "c", "#1"]),
                      ("BC2", ["b", "c", "#2"]), ("BC3", ["b", "c", "#3"]), ("SIL", ["#1"]),
                      ("ABC", ["a", "b", "c", "d"]), ("X", ["x"])]
    assert largest == 3
    assert add_disambig_symbols([("A", ["a"]), ("B", ["b"])]) == ([("A", ["a"]), ("B", ["b"])], 0)


def test_marked_lexicon_is_prefix_free_so_each_word_is_known_where_it_ends():
    words = ["A", "AB", "ABC", "B", "BB", "B2"]
    spellings = [["a"], ["a", "b"], ["a", "b", "c"], ["b"], ["b", "b"], ["b"]]
    marked, _ = add_disambig_symbols(list(zip(words, spellings)))
    sequences = [tuple(tokens) for _, tokens in marked]
    assert len(set(sequences)) == len(sequences)
    for x, y in itertools.permutations(sequences, 2):
        assert y[: len(x)] != x, f"{x} is a prefix of {y}"


def test_remove_disambig_turns_symbols_into_epsilons_and_keeps_gradients():
    weight = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    graph = graphs.Graph.from_arrays([0, 1, 1], [1, 2, 2], [3, 7, 9], [10, -1, 11], weight=weight,
                                     start=[0], accept=[2])
    cleaned = remove_disambig(graph, first_disambig=7)
    assert cleaned.ilabel.tolist() == [3, -1, -1] and cleaned.olabel.tolist() == [10, -1, 11]
    graphs.forward_score(cleaned).backward()
    assert weight.grad is not None and weight.grad[0] == 1.0


def _random_lm_setup(seed: int):
    """A lexicon with prefixes and homophones over 3 tokens (+ blank), and a trigram LM over its words."""
    import random

    from asr.lm import estimate_kneser_ney

    rng = random.Random(seed)
    spellings = {"ab": [1, 2], "a": [1], "abc": [1, 2, 3], "ba": [2, 1], "c": [3], "cc": [3, 3], "ab2": [1, 2]}
    words = list(spellings)
    lexicon = [(i, spellings[w]) for i, w in enumerate(words)]
    sentences = [[rng.choice(words) for _ in range(rng.randint(1, 5))] for _ in range(30)]
    return words, lexicon, estimate_kneser_ney(sentences, 3)



def test_hlg_scores_every_word_sequence_as_the_plain_composition_does():
    """HLG = H o min(det(L o G)) keeps, for every word sequence, the log-sum over frame
    alignments and back-off paths of H o L o G built without disambiguation, determinization
    or minimization (G's back-off arcs plain epsilons)."""
    from asr.lang import compile_hlg, compose_hlg
    from asr.lm import grammar_from_arpa

    words, lexicon, lm = _random_lm_setup(0)
    hlg = compile_hlg(4, lexicon, grammar_from_arpa(lm, words, backoff_label=len(words)), backoff_label=len(words))
    reference = compose_hlg(4, lexicon, graphs.remove_epsilon(grammar_from_arpa(lm, words)))
    assert hlg.num_arcs < reference.num_arcs
    torch.manual_seed(0)
    log_probs = torch.randn(3, 10, 4, dtype=torch.float64).log_softmax(-1)
    lengths = torch.tensor([10, 7, 4])
    hlg, reference = hlg.to(dtype=torch.float64), reference.to(dtype=torch.float64)
    assert torch.allclose(graphs.intersect_dense(log_probs, lengths, hlg),
                          graphs.intersect_dense(log_probs, lengths, reference), atol=1e-6)
    for sequence in [[0], [1], [6], [0, 1], [1, 0], [2, 4], [4, 5], [3, 3, 1]]:
        words_only = graphs.sequence_graph([sequence], dtype=torch.float64)[0]
        ours = graphs.intersect_dense(log_probs, lengths, graphs.compose(hlg, words_only))
        theirs = graphs.intersect_dense(log_probs, lengths, graphs.compose(reference, words_only))
        assert torch.allclose(ours, theirs, atol=1e-6), sequence
