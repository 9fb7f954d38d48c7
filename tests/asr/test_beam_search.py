"""WFST beam search against exact Viterbi decoding through the unoptimized graph."""

import itertools
import random

import pytest
import torch

import graphs
from asr.decoding import CTCTopology, WfstDecoder, lattice_nbest, viterbi_words
from asr.lang import compile_hlg, compose_hlg
from asr.lm import estimate_kneser_ney, grammar_from_arpa

SPELLINGS = {"ab": [1, 2], "a": [1], "abc": [1, 2, 3], "ba": [2, 1], "c": [3], "cc": [3, 3], "ab2": [1, 2]}
WORDS = list(SPELLINGS)
LEXICON = [(i, SPELLINGS[w]) for i, w in enumerate(WORDS)]


@pytest.fixture(scope="module")
def lm():
    rng = random.Random(0)
    return estimate_kneser_ney([[rng.choice(WORDS) for _ in range(rng.randint(1, 5))] for _ in range(30)], 3)


def hlg(lm, **options):
    grammar = grammar_from_arpa(lm, WORDS, backoff_label=len(WORDS))
    return compile_hlg(4, LEXICON, grammar, backoff_label=len(WORDS), **options)


def exact_viterbi(lm, log_probs, lengths):
    """Best word sequences through H o L o G built without disambiguation or optimization
    (back-off epsilons removed in the tropical semiring: a path's weight is its best route)."""
    reference = compose_hlg(4, LEXICON, graphs.remove_epsilon(grammar_from_arpa(lm, WORDS), "tropical"))
    reference = graphs.remove_epsilon(reference, "tropical")  # (the arc of an empty sentence, from G's </s>)
    keep = reference.ilabel != graphs.EPSILON  # is left for the empty sequence, which no utterance here is
    reference = graphs.Graph.from_arrays(reference.src[keep], reference.dst[keep], reference.ilabel[keep],
                                         reference.olabel[keep], weight=reference.weight[keep].double(),
                                         start=reference.start, accept=reference.accept,
                                         num_nodes=reference.num_nodes)
    return viterbi_words(log_probs.double(), lengths, reference)


def emissions(seed, size=6, frames=20, sharpness=3.0):
    torch.manual_seed(seed)
    return (sharpness * torch.randn(size, frames, 4)).log_softmax(-1), torch.tensor([20, 15, 9, 4, 1, 2])[:size]


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unpruned_search_finds_the_exact_best_path(lm, modified, seed):
    log_probs, lengths = emissions(seed)
    result = WfstDecoder(hlg(lm, topology=CTCTopology(modified=modified)), beam=1e9, max_active=10**6)(log_probs, lengths)
    words, alignment = exact_viterbi(lm, log_probs, lengths)
    assert result.words == words
    assert torch.allclose(result.score.double(), alignment.score, atol=1e-4)
    assert all(result.reached_final)
    for frames, length in zip(result.word_frames, lengths.tolist()):
        assert frames == sorted(frames) and all(0 <= f < length for f in frames)


def test_pruning_trades_score_for_fewer_tokens_and_never_beats_exact(lm):
    log_probs, lengths = emissions(3, sharpness=1.0)
    graph = hlg(lm)
    exact = WfstDecoder(graph, beam=1e9, max_active=10**6)(log_probs, lengths).score
    for beam, max_active in [(4.0, 10**6), (1e9, 3), (2.0, 1)]:
        pruned = WfstDecoder(graph, beam=beam, max_active=max_active)(log_probs, lengths)
        final = torch.tensor(pruned.reached_final)
        assert final.any() and (pruned.score[final] <= exact[final] + 1e-4).all()
        assert all(0 <= w < len(WORDS) for words in pruned.words for w in words)
    # with sharp emissions the best path stands out, and a narrow beam finds it
    log_probs, lengths = emissions(4, sharpness=8.0)
    narrow = WfstDecoder(graph, beam=8.0, max_active=50)(log_probs, lengths)
    assert narrow.words == WfstDecoder(graph, beam=1e9, max_active=10**6)(log_probs, lengths).words


def test_lm_scale_and_word_score_change_the_graph_part_of_the_score(lm):
    log_probs, lengths = emissions(5)
    graph = hlg(lm)
    plain = WfstDecoder(graph, beam=1e9, max_active=10**6)(log_probs, lengths)
    bonus = WfstDecoder(graph, beam=1e9, max_active=10**6, word_score=100.0)(log_probs, lengths)
    assert sum(map(len, bonus.words)) > sum(map(len, plain.words))  # a large bonus inserts words
    no_lm = WfstDecoder(graph, beam=1e9, max_active=10**6, lm_scale=0.0)(log_probs, lengths)
    assert (no_lm.score >= plain.score - 1e-4).all()  # LM log-probs are <= 0, so dropping them cannot lower


def test_bad_input_is_a_clear_error_and_no_frames_give_no_words(lm):
    decoder = WfstDecoder(hlg(lm))
    with pytest.raises(ValueError, match="vocabulary"):
        decoder(torch.zeros(1, 5, 3), [5])
    with pytest.raises(ValueError, match="lengths"):
        decoder(torch.zeros(2, 5, 4), [5])
    with pytest.raises(ValueError, match="beam"):
        WfstDecoder(hlg(lm), beam=0)
    result = decoder(torch.zeros(2, 5, 4).log_softmax(-1), [0, 5])
    assert result.words[0] == [] and result.reached_final == [True, True]  # the empty sentence, <s> </s>
    one_word_at_least = compose_hlg(4, LEXICON, graphs.Graph.from_arrays(
        [0, 1], [1, 1], [0, 1], weight=[0.0, 0.0], start=[0], accept=[1]))
    result = WfstDecoder(one_word_at_least)(torch.zeros(2, 5, 4).log_softmax(-1), [0, 5])
    assert result.reached_final == [False, True]  # Kaldi's fallback: the best token, final or not


def exact_word_sequence_scores(lm, log_probs, length, max_words=4):
    """Best score of every word sequence up to max_words words, by Viterbi through the
    reference graph restricted to that sequence."""
    reference = graphs.remove_epsilon(compose_hlg(4, LEXICON, graphs.remove_epsilon(
        grammar_from_arpa(lm, WORDS), "tropical")), "tropical")
    keep = reference.ilabel != graphs.EPSILON
    reference = graphs.Graph.from_arrays(reference.src[keep], reference.dst[keep], reference.ilabel[keep],
                                         reference.olabel[keep], weight=reference.weight[keep].double(),
                                         start=reference.start, accept=reference.accept,
                                         num_nodes=reference.num_nodes)
    sequences = [list(s) for n in range(max_words + 1) for s in itertools.product(range(len(WORDS)), repeat=n)]
    restricted = graphs.compose([reference] * len(sequences), graphs.sequence_graph(sequences, dtype=torch.float64))
    scores = graphs.align_dense(log_probs[None].expand(len(sequences), -1, -1).double(), [length] * len(sequences),
                                restricted).score
    return {tuple(s): float(v) for s, v in zip(sequences, scores) if v > float("-inf")}


@pytest.mark.parametrize("seed", [0, 1])
def test_lattice_holds_every_word_sequence_within_the_lattice_beam_with_its_best_score(lm, seed):
    """As in Kaldi, pruning keeps every arc on some path within the lattice beam, so the
    lattice holds every word sequence within the beam with its exact best score; sequences
    made of kept arcs but worse than the beam may remain too, never above their best score."""
    torch.manual_seed(seed)
    frames = 5  # at most 5 words: every word sequence is enumerated below
    log_probs = (2.0 * torch.randn(1, frames, 4)).log_softmax(-1)
    lattice_beam = 6.0
    result = WfstDecoder(hlg(lm), beam=1e9, max_active=10**6, lattice_beam=lattice_beam)(log_probs, [frames])
    found = {}
    for path in graphs.nbest(result.lattices[0], 100_000):
        ordered = graphs.topsort(path)
        found[tuple(int(w) for w in ordered.olabel if w != graphs.EPSILON)] = float(ordered.weight.sum())
    exact = exact_word_sequence_scores(lm, log_probs[0], frames, max_words=frames)
    best = max(exact.values())
    within = {words for words, score in exact.items() if score >= best - lattice_beam}
    assert within <= found.keys() and len(within) > 1
    for words, score in found.items():
        if words in within:
            assert score == pytest.approx(exact[words], abs=1e-3), words
        else:
            assert score < best - lattice_beam and score <= exact[words] + 1e-3, words
    assert tuple(result.words[0]) == max(exact, key=exact.get)
    assert result.score[0].item() == pytest.approx(best, abs=1e-3)


@pytest.mark.parametrize("lattice_beam", [None, 6.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_advancing_chunk_by_chunk_equals_one_call(lm, seed, lattice_beam):
    """init / advance / finish over chunks of uneven sizes per utterance (some get no frame in a
    chunk) give the words, word frames, scores and lattices of decoding all frames at once."""
    log_probs, lengths = emissions(seed)
    decoder = WfstDecoder(hlg(lm), beam=10.0, max_active=50, lattice_beam=lattice_beam)
    whole = decoder(log_probs, lengths)
    rng = random.Random(seed)
    search, done = decoder.init(len(lengths)), torch.zeros_like(lengths)
    while bool((done < lengths).any()):
        take = torch.tensor([min(rng.choice([0, 1, 3, 7]), int(n - d)) for n, d in zip(lengths, done)])
        chunk = torch.zeros(len(lengths), max(1, int(take.max())), 4).log_softmax(-1)
        for b, (d, k) in enumerate(zip(done.tolist(), take.tolist())):
            chunk[b, :k] = log_probs[b, d:d + k]
        decoder.advance(search, chunk, take)
        done += take
    chunked = decoder.finish(search)
    assert chunked.words == whole.words and chunked.word_frames == whole.word_frames
    torch.testing.assert_close(chunked.score, whole.score)
    if lattice_beam is not None:
        assert all(graphs.isomorphic(a, b, atol=1e-4) for a, b in zip(chunked.lattices, whole.lattices))


@pytest.mark.parametrize("seed", range(4))
def test_hotwords_pick_the_best_sequence_with_its_bonus_and_no_bonus_for_unfinished_phrases(lm, seed):
    """Unpruned search with a context graph over the graph's words = the best of every word
    sequence's exact score plus its hotword total (brute force over the sequences)."""
    from asr.decoding import ContextGraph

    torch.manual_seed(seed)
    frames = 5
    log_probs = (2.0 * torch.randn(1, frames, 4)).log_softmax(-1)
    exact = exact_word_sequence_scores(lm, log_probs[0], frames, max_words=frames)
    context = ContextGraph.build([[WORDS.index("c"), WORDS.index("c")], [WORDS.index("ba")],
                                  [WORDS.index("a"), WORDS.index("ab"), WORDS.index("c")]], len(WORDS),
                                 [3.0, 2.0, 4.0])

    def biased(words, finished=True):
        state, total = [0], 0.0
        for word in words:
            gained, state = context.step(state, [word])
            total += float(gained[0])
        return total + float(context.finalize(state)[0]) * finished

    result = WfstDecoder(hlg(lm), beam=1e9, max_active=10**6, context=context, lattice_beam=1e9)(log_probs, [frames])
    expected = max(exact, key=lambda words: exact[words] + biased(words))
    assert tuple(result.words[0]) == expected
    assert float(result.score[0]) == pytest.approx(exact[expected] + biased(expected), abs=1e-3)
    # the lattice's arcs carry the scores and bonuses of their words (the end-of-utterance take-back is not an arc)
    in_lattice = {tuple(h.words): h.score for h in lattice_nbest(result.lattices[0], 10_000)}
    for words in list(in_lattice)[:20]:
        assert in_lattice[words] == pytest.approx(exact[words] + biased(words, finished=False), abs=1e-3)
    unbiased = WfstDecoder(hlg(lm), beam=1e9, max_active=10**6)(log_probs, [frames])
    assert tuple(unbiased.words[0]) == max(exact, key=exact.get)
