"""Lexicon-free CTC prefix beam search against brute-force enumeration of alignments."""

import itertools
import math

import pytest
import torch

from asr.decoding import greedy_ctc, prefix_beam_search


def collapse(path, blank=0):
    return tuple(t for i, t in enumerate(path) if t != blank and (i == 0 or path[i - 1] != t))


def label_probabilities(log_probs):
    """log P(labelling) for every labelling, by summing all V^T alignments."""
    frames, vocab = log_probs.shape
    totals = {}
    for path in itertools.product(range(vocab), repeat=frames):
        score = float(sum(log_probs[t, v] for t, v in enumerate(path)))
        label = collapse(path)
        totals[label] = float(torch.logaddexp(torch.tensor(totals.get(label, -math.inf)), torch.tensor(score)))
    return totals


@pytest.mark.parametrize("seed", range(6))
def test_a_wide_beam_finds_the_most_probable_labelling_with_its_exact_probability(seed):
    torch.manual_seed(seed)
    log_probs = torch.randn(3, 6, 3).mul(1.5).log_softmax(-1)
    lengths = [6, 5, 3]
    result = prefix_beam_search(log_probs, lengths, beam=64)
    for b, length in enumerate(lengths):
        totals = label_probabilities(log_probs[b, :length])
        best = max(totals, key=totals.get)
        assert tuple(result.tokens[b]) == best
        assert result.score[b].item() == pytest.approx(totals[best], abs=1e-4)


def test_summing_alignments_beats_greedy_where_greedy_is_wrong():
    # blank is the likelier label at every frame, yet "a" is the likelier labelling
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    log_probs = probs.log()[None]
    assert greedy_ctc(log_probs, [2]) == [[]]  # the best single path is all blanks: P = .36
    result = prefix_beam_search(log_probs, [2], beam=4)
    assert result.tokens == [[1]]  # "a": .4*.4 + .4*.6 + .6*.4 = .64
    assert result.score[0].item() == pytest.approx(math.log(0.64), abs=1e-6)


def test_narrow_beams_stay_valid_and_no_frames_give_nothing():
    torch.manual_seed(0)
    log_probs = torch.randn(4, 30, 6).log_softmax(-1)
    result = prefix_beam_search(log_probs, [30, 20, 1, 0], beam=2)
    assert result.tokens[3] == [] and result.score[3].item() == 0.0
    assert all(0 < t < 6 for tokens in result.tokens for t in tokens)
    with pytest.raises(ValueError, match="beam"):
        prefix_beam_search(log_probs, [30] * 4, beam=0)


@pytest.mark.parametrize("seed", range(3))
def test_advancing_chunk_by_chunk_equals_one_call(seed):
    from asr.decoding import PrefixSearch

    torch.manual_seed(seed)
    log_probs = torch.randn(4, 30, 5).mul(2.0).log_softmax(-1)
    lengths = torch.tensor([30, 17, 1, 0])
    whole = prefix_beam_search(log_probs, lengths, beam=4)
    search, done = PrefixSearch(4, beam=4), torch.zeros(4, dtype=torch.long)
    for step in [5, 0, 9, 2, 14]:  # chunks of emissions; an utterance gets what is left of it
        take = (lengths - done).clamp(min=0, max=step)
        chunk = torch.stack([log_probs[b, d:d + step] if d + step <= 30 else
                             torch.cat([log_probs[b, d:], torch.zeros(d + step - 30, 5)]) for b, d in enumerate(done)])
        search.advance(chunk, take)
        done += take
    assert bool((done == lengths).all())
    chunked = search.finish()
    assert chunked.tokens == whole.tokens
    torch.testing.assert_close(chunked.score, whole.score)


# ---------------------------------------------------------------- hotwords (a context graph)
def spelled(emissions_by_frame, vocab=5):
    """Emissions [1, T, V] whose frame t puts probability p on label l for each (l, p) given."""
    log_probs = torch.full((1, len(emissions_by_frame), vocab), 1e-4)
    for t, frame in enumerate(emissions_by_frame):
        for label, p in frame.items():
            log_probs[0, t, label] = p
    return (log_probs / log_probs.sum(-1, keepdim=True)).log()


def test_a_hotword_wins_an_ambiguous_frame_and_an_unfinished_one_does_not():
    from asr.decoding import ContextGraph

    BLK, A, C, O, T = range(5)
    log_probs = spelled([{C: 0.9}, {BLK: 0.9}, {A: 0.5, O: 0.4}, {BLK: 0.9}, {T: 0.9}])
    lengths = torch.tensor([5])
    assert prefix_beam_search(log_probs, lengths, beam=4).tokens == [[C, A, T]]
    cot = ContextGraph.build([[C, O, T]], 5, default_score=1.0)
    assert prefix_beam_search(log_probs, lengths, beam=4, context=cot).tokens == [[C, O, T]]
    cots = ContextGraph.build([[C, O, T, T]], 5, default_score=1.0)  # never completed: its bonus is taken back
    assert prefix_beam_search(log_probs, lengths, beam=4, context=cots).tokens == [[C, A, T]]


@pytest.mark.parametrize("seed", range(3))
def test_an_empty_hotword_list_changes_nothing(seed):
    from asr.decoding import ContextGraph

    torch.manual_seed(seed)
    log_probs = torch.randn(4, 20, 6).mul(2).log_softmax(-1)
    lengths = torch.tensor([20, 15, 9, 1])
    plain = prefix_beam_search(log_probs, lengths, beam=5)
    empty = prefix_beam_search(log_probs, lengths, beam=5, context=ContextGraph.build([], 6))
    assert empty.tokens == plain.tokens and torch.equal(empty.score, plain.score)
