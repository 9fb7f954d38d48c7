"""How frames spell tokens (CTC, ASG): greedy reading, framing with the repetition label, H,
and decoding an ASG model through its HLG, each against a brute-force reading of frame labels."""

import itertools
import random

import pytest
import torch

from asr.decoding import ASGTopology, BeamSearchDecoder, CTCTopology, ViterbiDecoder, force_align
from asr.decoding.graph import DecodingGraph
from asr.decoding.topology import load_topology, save_topology
from asr.lang import build_hlg
from tests.graphs.brute import string_weights


def read_asg(frames, repeat=0):
    """ASG frames by hand: runs merged, a repetition label is the token before it."""
    tokens, last = [], None
    for label in frames:
        if label == last:
            continue
        last = label
        if label == repeat:
            if tokens:
                tokens.append(tokens[-1])
        else:
            tokens.append(label)
    return tokens


def one_hot(paths, num_tokens, length):
    log_probs = torch.full((len(paths), length, num_tokens), -8.0)
    for b, path in enumerate(paths):
        log_probs[b, torch.arange(len(path)), torch.tensor(path)] = 0.0
    return log_probs


def test_asg_greedy_reads_frames_as_wav2letter_does():
    rng = random.Random(0)
    paths = [[rng.randrange(4) for _ in range(rng.randrange(1, 12))] for _ in range(200)]
    lengths = [len(p) for p in paths]
    got = ASGTopology().greedy(one_hot(paths, 4, max(lengths)), lengths)
    assert got == [read_asg(p) for p in paths]


def test_asg_frame_labels_never_repeat_a_label_and_read_back():
    topology = ASGTopology()
    rng = random.Random(1)
    sequences = [[rng.choice([1, 2, 2, 3]) for _ in range(rng.randrange(1, 9))] for _ in range(300)]
    padded = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sequences], batch_first=True, padding_value=7)
    lengths = torch.tensor([len(s) for s in sequences])
    framed = topology.frame_labels(padded, lengths)
    for tokens, row, n in zip(sequences, framed.tolist(), lengths.tolist()):
        labels = row[:n]
        assert all(a != b for a, b in zip(labels, labels[1:])), (tokens, labels)
        assert read_asg(labels) == tokens and row[n:] == [7] * (len(row) - n)
    assert topology.frame_labels(torch.tensor([[5, 4, 4, 4, 4, 6]]), torch.tensor([6])).tolist() == [[5, 4, 0, 4, 0, 6]]


@pytest.mark.parametrize("silence", [None, 2])
def test_asg_h_reads_every_frame_labelling_as_wav2letter_does_with_its_transition_score(silence):
    """Every frame labelling up to 4 frames, its tokens (a silence label's are none) and score."""
    torch.manual_seed(0)
    num_tokens = 3
    transitions = torch.randn(num_tokens + 1, num_tokens)
    expected = {((), ()): 0.0}
    for length in range(1, 5):
        for frames in itertools.product(range(num_tokens), repeat=length):
            if frames[0] == 0:
                continue  # a repetition label needs a token before it
            tokens = tuple(token for token in read_asg(frames) if token != silence)
            expected[frames, tokens] = float(
                transitions[num_tokens, frames[0]] + sum(transitions[a, b] for a, b in zip(frames, frames[1:])))
    got = string_weights(ASGTopology(transitions, silence=silence).graph(num_tokens), max_length=4)
    assert got.keys() == expected.keys()
    assert all(abs(got[key] - expected[key]) < 1e-5 for key in expected)


def test_ctc_greedy_drops_blanks_and_merges_repeats():
    paths = [[0, 1, 1, 0, 1, 2, 2, 0], [2, 2, 0, 0]]
    assert CTCTopology().greedy(one_hot(paths, 3, 8), [8, 4]) == [[1, 1, 2], [2]]


def test_an_asg_model_decodes_double_letters_through_its_graph_and_aligns_them():
    """Frames "S S E E <rep> <rep> | S E <rep>" read "SEE" twice through an ASG HLG (with CTC's H
    the same frames find no "SEE SEE": it needs a blank between the Es)."""
    tokens = ["<blk>", "|", "E", "S"]
    lexicon = {"SEE": [["S", "E", "E", "|"], ["S", "E", "E"]], "SE": [["S", "E", "|"], ["S", "E"]]}
    graph = build_hlg(tokens, lexicon, optimize=False, topology=ASGTopology())
    frames = [3, 3, 2, 2, 0, 0, 1, 3, 2, 0]
    log_probs = one_hot([frames], 4, len(frames))
    (hypothesis,) = ViterbiDecoder(graph)(log_probs, torch.tensor([len(frames)]))
    assert hypothesis.words == ["SEE", "SEE"] and hypothesis.spans == [(0, 6), (7, 9)]
    assert hypothesis.tokens == [(3, 0, 1), (2, 2, 3), (2, 4, 5), (1, 6, 6), (3, 7, 7), (2, 8, 8), (2, 9, 9)]
    ctc = build_hlg(tokens, lexicon, optimize=False)
    (words,) = [h.words for h in ViterbiDecoder(ctc)(log_probs, torch.tensor([len(frames)]))]
    assert words != ["SEE", "SEE"]
    spans, alignment = force_align(log_probs, [len(frames)], [[graph.spell("SEE"), graph.spell("SEE")]],
                                   ASGTopology())
    assert spans == [[(0, 6), (7, 9)]] and float(alignment.score[0]) > -1e-3
    compiled = build_hlg(tokens, lexicon, topology=ASGTopology())  # the optimized HLG finds them too
    (searched,) = BeamSearchDecoder(compiled)(log_probs, torch.tensor([len(frames)]))
    assert searched.words == ["SEE", "SEE"] and searched.spans == [(0, 6), (7, 9)]


def test_an_asg_character_model_reads_its_separator_as_silence_around_and_between_words():
    """As `asr train --loss asg` frames a character transcript: "| S E E <rep> | | S E |"; the
    separator frames are pauses, the lexicon's spellings without it match."""
    tokens = ["<blk>", "|", "E", "S"]
    lexicon = {"SEE": [["S", "E", "E", "|"], ["S", "E", "E"]], "SE": [["S", "E", "|"], ["S", "E"]]}
    topology = ASGTopology(silence=1)
    graph = build_hlg(tokens, lexicon, topology=topology)
    frames = [1, 1, 3, 2, 0, 1, 0, 3, 2, 1, 1]
    (hypothesis,) = BeamSearchDecoder(graph)(one_hot([frames], 4, len(frames)), torch.tensor([len(frames)]))
    assert hypothesis.words == ["SEE", "SE"] and hypothesis.spans == [(2, 6), (7, 10)]  # a word ends where the next begins
    assert topology.greedy(one_hot([frames], 4, len(frames)), [len(frames)]) == [[1, 3, 2, 2, 1, 1, 3, 2, 1]]


def test_an_asg_model_with_word_tokens_says_a_word_twice():
    """A word repeated across a word boundary (yesno's "YES YES", one token per word) is framed
    with the repetition label; the graph's H gives the token again."""
    graph = build_hlg(["<blk>", "YES", "NO"], {"YES": [["YES"]], "NO": [["NO"]]}, optimize=False,
                      topology=ASGTopology())
    frames = [1, 1, 0, 0, 2, 1, 0]
    (hypothesis,) = ViterbiDecoder(graph)(one_hot([frames], 3, 7), torch.tensor([7]))
    assert hypothesis.words == ["YES", "YES", "NO", "YES", "YES"]
    assert ASGTopology().greedy(one_hot([frames], 3, 7), [7]) == [[1, 1, 2, 1, 1]]


def test_a_graph_folder_keeps_its_topology_and_transitions(tmp_path):
    transitions = torch.randn(5, 4)
    graph = build_hlg(["<blk>", "|", "A", "B"], {"AB": [["A", "B"]]}, optimize=False,
                      topology=ASGTopology(transitions))
    graph.save(tmp_path / "g")
    loaded = DecodingGraph.load(tmp_path / "g")
    assert loaded.topology.name == "asg" and torch.allclose(loaded.topology.transitions, transitions)
    assert loaded.spell("AB") == graph.spell("AB")
    save_topology(CTCTopology(), tmp_path)
    assert not (tmp_path / "topology.json").exists() and load_topology(tmp_path) == CTCTopology()
