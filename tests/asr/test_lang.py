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
