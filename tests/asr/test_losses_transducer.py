"""Word-piece segmentation graphs and TransducerLoss against brute-force enumeration of
segmentations and CTC frame alignments; gradients; a small learning run."""

import itertools
import math

import pytest
import torch

import graphs
from asr.losses import TransducerLoss
from graphs.wordpiece import ctc_alignments, mark_words, segmentation_graph
from tests.graphs import brute

M = "\u2581"  # the word marker "▁"


# ---------------------------------------------------------------- brute force, independent of graphs
def segmentations(text, pieces):
    """Every tuple of piece indices whose pieces concatenate to the text (recursion)."""
    if not text:
        return {()}
    return {(i,) + rest for i, piece in enumerate(pieces) if text.startswith(piece)
            for rest in segmentations(text[len(piece):], pieces)}


def collapse(frames, blank):
    """CTC: merge repeated frame labels, then drop blanks."""
    merged = [label for k, label in enumerate(frames) if k == 0 or label != frames[k - 1]]
    return tuple(label for label in merged if label != blank)


def transition_score(sequence, table, ngram):
    """Sum of n-gram scores table[history node, piece]; history nodes numbered as documented in
    ngram_transition_graph (shorter histories first, each length in base-P order)."""
    num_pieces = table.shape[1]
    score = 0.0
    for k, piece in enumerate(sequence):
        history = sequence[max(0, k - (ngram - 1)):k]
        node = sum(num_pieces ** j for j in range(len(history)))
        node += sum(h * num_pieces ** (len(history) - 1 - j) for j, h in enumerate(history))
        score += table[node, piece]
    return score


def brute_loss(log_probs, text, pieces, blank, ngram=0, transitions=None):
    """-(log-sum over frame sequences collapsing to a segmentation of the text) [+ log-sum over
    all frame sequences], each scored by emissions + transitions of its piece sequence."""
    num_frames, vocab = log_probs.shape
    piece_of = {column: i for i, column in enumerate(c for c in range(vocab) if c != blank)}
    wanted = segmentations(text, pieces)
    table = None if not ngram else transitions.reshape(-1, len(pieces))
    numerator, denominator = [], []
    for frames in itertools.product(range(vocab), repeat=num_frames):
        sequence = tuple(piece_of[c] for c in collapse(frames, blank))
        score = sum(log_probs[t, c] for t, c in enumerate(frames))
        if ngram:
            score += transition_score(sequence, table, ngram)
        denominator.append(score)
        if sequence in wanted:
            numerator.append(score)
    loss = -brute.logsumexp(numerator)
    return loss + brute.logsumexp(denominator) if ngram else loss


def greedy_text(log_probs, loss):
    """Argmax per frame, merge repeats, drop the blank, join the pieces, unmark the words."""
    piece_of = dict(zip(loss.columns.tolist(), loss.pieces))
    frames = log_probs.argmax(-1).tolist()
    return "".join(piece_of[c] for c in collapse(frames, loss.blank)).replace(M, " ").strip()


# ---------------------------------------------------------------- (a) segmentation graphs
SEGMENTATION_CASES = [
    # (texts, pieces, word_marker)
    (["the cat", "cat", "a"], [M + "the", M + "t", "h", "e", "he", M + "c", "at", "a", "t", M, M + "a"], M),
    (["aaaa", "aba", ""], ["a", "aa", "aaa", "b", "ab", "ba"], None),  # overlapping pieces, empty text
    (["abc", "xyz", "ab"], ["ab", "bc", "a"], None),  # "abc" and "xyz" have no segmentation
    (["héllo wörld"], [M, "h", "é", "ll", "l", "o", M + "w", "ö", "rld", "r", "d", M + "hé"], M),
]


@pytest.mark.parametrize("texts, pieces, word_marker", SEGMENTATION_CASES)
def test_segmentation_graph_accepts_exactly_the_segmentations(texts, pieces, word_marker):
    lattices = segmentation_graph(texts, pieces, word_marker=word_marker)
    assert len(lattices) == len(texts)
    for text, lattice in zip(texts, lattices):
        want = segmentations(mark_words(text, word_marker), pieces)
        got = brute.string_weights(lattice, max_length=20)
        assert {inputs for inputs, _ in got} == want
        assert all(weight == 0.0 for weight in got.values())
        assert lattice.is_acceptor()


def test_segmentation_labels_and_marking():
    assert mark_words("  the  cat ") == M + "the" + M + "cat"
    assert mark_words("the cat", None) == "the cat"
    (lattice,) = segmentation_graph(["ab"], ["a", "b"], labels=[7, 3], word_marker=None)
    assert set(brute.string_weights(lattice)) == {((7, 3), (7, 3))}
    with pytest.raises(ValueError, match="distinct"):
        segmentation_graph(["a"], ["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        segmentation_graph(["a"], ["a", ""])


def test_a_text_without_segmentation_has_no_path_and_infinite_loss():
    (lattice,) = segmentation_graph(["abc"], ["ab", "bc"], word_marker=None)
    assert brute.string_weights(lattice) == {}
    loss = TransducerLoss(["ab", "bc"], word_marker=None, reduction="none")
    log_probs = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    value = loss(log_probs.log_softmax(-1), ["abc"], [4])
    assert value.item() == math.inf
    value.sum().backward()
    assert torch.count_nonzero(log_probs.grad) == 0


@pytest.mark.parametrize("blank", [0, 2])
def test_ctc_alignments_equal_the_composition_with_the_ctc_topology(blank):
    g = torch.Generator().manual_seed(blank)
    vocab = 4
    columns = [c for c in range(vocab) if c != blank]
    transitions = graphs.ngram_transition_graph(len(columns), 2)  # cyclic, every node accepts
    acceptors = [
        graphs.Graph.from_arrays(transitions.src, transitions.dst, torch.tensor(columns)[transitions.ilabel],
                                 weight=torch.randn(transitions.num_arcs, generator=g), start=[0],
                                 accept=torch.arange(transitions.num_nodes)),
        *segmentation_graph(["aabab"], ["a", "ab", "b"], labels=columns, word_marker=None),
    ]
    acceptors[1].weight = torch.randn(acceptors[1].num_arcs, generator=g)
    topology = graphs.ctc_topology(vocab, blank)
    for acceptor, direct in zip(acceptors, ctc_alignments(acceptors, blank)):
        composed = graphs.project_input(graphs.compose(topology, acceptor))
        brute.assert_same_strings(brute.string_weights(direct, max_length=6),
                                  brute.string_weights(composed, max_length=6))


# ---------------------------------------------------------------- (b) the loss against brute force
LOSS_CASES = [
    # (pieces, blank, word_marker, texts, input lengths)
    (["a", "b", "ab"], 0, None, ["ab", "aab", "ba", "c"], [5, 5, 3, 4]),
    (["a", "b", "ab"], 2, None, ["abab", "", "bb"], [5, 2, 4]),
    ([M + "a", "a", M, "b"], 1, M, ["a ab", "b", "aa"], [5, 4, 3]),
]


@pytest.mark.parametrize("ngram", [0, 1, 2])
@pytest.mark.parametrize("pieces, blank, word_marker, texts, lengths", LOSS_CASES)
def test_loss_matches_brute_force(pieces, blank, word_marker, texts, lengths, ngram):
    g = torch.Generator().manual_seed(ngram + 10 * blank)
    vocab = len(pieces) + 1
    x = torch.randn(len(texts), max(lengths), vocab, dtype=torch.float64, generator=g)
    loss = TransducerLoss(pieces, blank=blank, ngram=ngram, word_marker=word_marker, reduction="none").double()
    if ngram:
        with torch.no_grad():
            loss.transitions.copy_(torch.randn(loss.transitions.shape, generator=g))
    # Unnormalized emissions too: the denominator must then differ from zero.
    for log_probs in (x.log_softmax(-1), x):
        got = loss(log_probs, texts, lengths)
        transitions = loss.transitions.detach().numpy() if ngram else None
        want = [brute_loss(lp[:n].numpy(), mark_words(text, word_marker), pieces, blank, ngram, transitions)
                for lp, text, n in zip(log_probs, texts, lengths)]
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=1e-9)


def test_reductions_and_zero_transitions():
    pieces, texts, lengths = [M + "a", "a", M, "b"], ["a ab", "b", "ba"], [5, 4, 3]
    log_probs = torch.randn(3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).log_softmax(-1)
    per_utterance = TransducerLoss(pieces, reduction="none")(log_probs, texts, lengths)
    characters = torch.tensor([5.0, 2.0, 3.0], dtype=torch.float64)  # "▁a▁ab", "▁b", "▁ba"
    torch.testing.assert_close(TransducerLoss(pieces)(log_probs, texts, lengths), (per_utterance / characters).mean())
    torch.testing.assert_close(TransducerLoss(pieces, reduction="sum")(log_probs, texts, lengths), per_utterance.sum())
    # Zero transitions on normalized emissions: the denominator is log 1, the loss unchanged.
    for ngram in (1, 2):
        bigram = TransducerLoss(pieces, ngram=ngram, reduction="none").double()
        torch.testing.assert_close(bigram(log_probs, texts, lengths), per_utterance)
    with pytest.raises(ValueError, match="emission columns"):
        TransducerLoss(pieces)(log_probs[..., :4], texts, lengths)


# ---------------------------------------------------------------- (c) gradients
def test_gradcheck_emissions_and_transitions():
    pieces, texts, lengths = ["a", "b", "ab"], ["ab", "aba"], [4, 5]
    loss = TransducerLoss(pieces, blank=1, ngram=2, word_marker=None, reduction="sum").double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(loss.transitions.shape, dtype=torch.float64, generator=g, requires_grad=True)

    def score(x, w):
        return torch.func.functional_call(loss, {"transitions": w}, (x.log_softmax(-1), texts, lengths))

    assert torch.autograd.gradcheck(score, (x, w))


# ---------------------------------------------------------------- (d) learning
@pytest.mark.parametrize("ngram", [0, 2])
def test_learning_reproduces_the_transcripts(ngram):
    torch.manual_seed(0)
    pieces = [M + "the", M + "t", "he", "h", "e", M + "c", "at", "a", "t", M + "s", M]
    transcripts = ["the cat", "the sat cat"]
    frames = 12
    loss = TransducerLoss(pieces, ngram=ngram)
    logits = torch.nn.Parameter(0.01 * torch.randn(len(transcripts), frames, len(pieces) + 1))
    optimizer = torch.optim.Adam([logits, *loss.parameters()], lr=0.1)
    lengths = [frames] * len(transcripts)
    first = None
    for _ in range(100):
        optimizer.zero_grad()
        value = loss(logits.log_softmax(-1), transcripts, lengths)
        value.backward()
        optimizer.step()
        first = value.item() if first is None else first
    assert value.item() < 0.1 * first
    assert [greedy_text(lp, loss) for lp in logits.detach()] == transcripts


# ---------------------------------------------------------------- as `asr train --loss wordpiece`
def test_wordpiece_training_loss_sums_ctc_over_every_segmentation_of_the_decoded_target(tmp_path):
    """WordPieceLoss gets token ids (the tokenizer's one segmentation) and scores every
    segmentation of their text: -log sum over segmentations of exp(-torch CTC loss)."""
    from asr.losses import WordPieceLoss, make_loss
    from asr.tokenizer import BPETokenizer, CharTokenizer

    texts = ["yes no", "no no yes", "yes", "no yes yes"] * 5
    tokenizer = BPETokenizer.train(iter(texts), 12, tmp_path / "bpe")
    loss = make_loss("wordpiece", tokenizer, texts)
    assert isinstance(loss, WordPieceLoss)
    pieces = tokenizer.tokens[1:]
    batch = ["yes no", "no yes yes"]
    targets = [tokenizer.encode(text) for text in batch]
    padded = torch.zeros(2, max(map(len, targets)), dtype=torch.long)
    for row, target in zip(padded, targets):
        row[:len(target)] = torch.tensor(target)
    lengths = torch.tensor([14, 20])
    log_probs = torch.randn(2, 20, tokenizer.vocab_size, dtype=torch.float64).log_softmax(-1)
    got = loss(log_probs, padded, lengths, torch.tensor([len(t) for t in targets]))
    expected = []
    for b, text in enumerate(batch):
        ways = segmentations(mark_words(text), pieces)
        assert len(ways) > 1  # the test means something only with several segmentations
        ctc = torch.stack([torch.nn.functional.ctc_loss(log_probs[b, :lengths[b]], torch.tensor(way) + 1,
                                                        lengths[b:b + 1], torch.tensor([len(way)]), reduction="sum")
                           for way in ways])
        expected.append(-torch.logsumexp(-ctc, 0) / len(mark_words(text)))
    torch.testing.assert_close(got, torch.stack(expected).mean())
    torch.testing.assert_close(loss(log_probs, torch.cat([torch.tensor(t) for t in targets]), lengths,
                                    torch.tensor([len(t) for t in targets])), got)
    with pytest.raises(ValueError, match="needs word-piece tokens"):
        make_loss("wordpiece", CharTokenizer.build(texts), texts)
