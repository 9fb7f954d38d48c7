"""ASGLoss against brute-force enumeration of frame labellings; gradients; graph structure; learning."""

import itertools
import math

import pytest
import torch

import graphs
from asr.losses import ASGLoss
from tests.graphs.brute import logsumexp


def collapse(labels) -> list[int]:
    """Merge repeats (ASG has no blank)."""
    return [l for i, l in enumerate(labels) if i == 0 or l != labels[i - 1]]


def brute_asg(emissions, transitions, target) -> float:
    """-(numerator - denominator) over all V^T frame labellings, each scored by its emissions
    plus transitions[V, first] and transitions[prev, next] for every later frame."""
    frames, vocab = emissions.shape
    numerator, denominator = [], []
    for labels in itertools.product(range(vocab), repeat=frames):
        score = sum(emissions[t, l].item() for t, l in enumerate(labels))
        score += sum(transitions[p, n].item() for p, n in zip((vocab,) + labels[:-1], labels))
        denominator.append(score)
        if collapse(labels) == list(target):
            numerator.append(score)
    return -(logsumexp(numerator) - logsumexp(denominator))


def random_case(seed, vocab=3, frames=5, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    emissions = scale * torch.randn(4, frames, vocab, dtype=torch.float64, generator=g)  # unnormalized
    transitions = torch.randn(vocab + 1, vocab, dtype=torch.float64, generator=g)
    return emissions, transitions


TARGETS = [[0, 1, 2], [2], [1, 0, 1], [2, 0]]  # "1 0 1" revisits a token, no immediate repeat


@pytest.mark.parametrize("seed", range(3))
def test_loss_matches_brute_force_enumeration(seed):
    emissions, transitions = random_case(seed)
    input_lengths = torch.tensor([5, 4, 3, 2])
    loss = ASGLoss(3, reduction="none").double()
    loss.transitions.data.copy_(transitions)
    targets = torch.tensor([t + [0] * (3 - len(t)) for t in TARGETS])  # padded with a real label
    target_lengths = torch.tensor([len(t) for t in TARGETS])
    got = loss(emissions, targets, input_lengths, target_lengths)
    want = [brute_asg(emissions[b, :n], transitions, TARGETS[b]) for b, n in enumerate(input_lengths.tolist())]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=0)
    # Concatenated targets give the same; 'sum' and 'mean' (per target length) reduce them.
    flat = torch.cat([torch.tensor(t) for t in TARGETS])
    torch.testing.assert_close(loss(emissions, flat, input_lengths, target_lengths), got)
    loss.reduction = "sum"
    assert loss(emissions, targets, input_lengths, target_lengths).item() == pytest.approx(sum(want))
    loss.reduction = "mean"
    mean = sum(w / len(t) for w, t in zip(want, TARGETS)) / len(want)
    assert loss(emissions, targets, input_lengths, target_lengths).item() == pytest.approx(mean)


def test_surround_frames_each_target_with_the_silence_label():
    emissions, transitions = random_case(3)
    targets, lengths = [[0, 1], [1], [1, 0], [0]], torch.tensor([2, 1, 2, 1])
    loss = ASGLoss(3, reduction="none", silence=2, surround=True).double()
    loss.transitions.data.copy_(transitions)
    got = loss(emissions, torch.tensor([t + [0] * (2 - len(t)) for t in targets]), torch.tensor([5, 4, 5, 3]), lengths)
    want = [brute_asg(emissions[b, :n], transitions, [2, *targets[b], 2]) for b, n in enumerate([5, 4, 5, 3])]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="surround needs a silence label"):
        ASGLoss(3, surround=True)


def test_fixed_zero_transitions_normalize_each_frame():
    emissions, _ = random_case(7)
    loss = ASGLoss(3, reduction="none", learn_transitions=False)
    assert loss.transitions is None and not list(loss.parameters())
    targets, lengths = torch.tensor([[0, 1, 2], [2, 0, 0]]), torch.tensor([3, 1])
    got = loss(emissions[:2], targets, [5, 5], lengths)
    want = [brute_asg(emissions[b], torch.zeros(4, 3, dtype=torch.float64), [[0, 1, 2], [2]][b]) for b in range(2)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), atol=1e-9, rtol=0)
    # ... which is the alignment score of per-frame log-softmaxed emissions.
    alignments = graphs.asg_alignment_graph(targets, lengths, dtype=torch.float64)
    torch.testing.assert_close(got, -graphs.intersect_dense(emissions[:2].log_softmax(-1), [5, 5], alignments))


def test_impossible_alignments_are_inf():
    """3 tokens in 2 frames, or frames with an empty target (no blank to absorb them), are
    impossible; an empty target over no frames is certain."""
    emissions, _ = random_case(3)
    loss = ASGLoss(3, reduction="none").double()
    got = loss(emissions[:3], torch.tensor([[0, 1, 2], [0, 0, 0], [1, 0, 0]]), [2, 0, 3], [3, 0, 0])
    assert got.tolist() == [math.inf, 0.0, math.inf]


def test_repeated_tokens_are_rejected():
    with pytest.raises(ValueError, match="repetition token"):
        graphs.asg_alignment_graph([[0, 1], [2, 1, 1]])
    with pytest.raises(ValueError, match="repetition token"):
        ASGLoss(3)(torch.zeros(1, 4, 3), torch.tensor([[2, 2]]), [4], [2])
    # Padding after the end of a target is not a repeat.
    graphs.asg_alignment_graph(torch.tensor([[1, 1, 1]]), [1])


def test_labels_and_transition_shape_are_checked():
    transitions = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        graphs.asg_alignment_graph([[0, 3]], transitions=transitions)
    with pytest.raises(ValueError, match="negative"):
        graphs.asg_alignment_graph([[0, -1]])
    with pytest.raises(ValueError, match=r"\[V \+ 1, V\]"):
        graphs.asg_alignment_graph([[0]], transitions=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="for 3 tokens"):
        graphs.asg_transition_graph(4, transitions)
    with pytest.raises(ValueError, match="expected 3"):
        ASGLoss(3)(torch.zeros(1, 4, 4), torch.tensor([[0]]), [4], [1])


def test_alignment_graph_gathers_its_weights_from_the_transitions():
    transitions = torch.arange(12.0).reshape(4, 3)  # transitions[i, j] == 3 i + j
    (graph,) = graphs.asg_alignment_graph([[2, 0, 1]], transitions=transitions)
    assert graph.src.tolist() == [0, 1, 1, 2, 2, 3] and graph.dst.tolist() == [1, 1, 2, 2, 3, 3]
    assert graph.ilabel.tolist() == graph.olabel.tolist() == [2, 2, 0, 0, 1, 1]
    assert graph.start.tolist() == [0] and graph.accept.tolist() == [3]
    # start->2, 2->2, 2->0, 0->0, 0->1, 1->1
    assert graph.weight.tolist() == [3 * 3 + 2, 3 * 2 + 2, 3 * 2 + 0, 0, 1, 3 * 1 + 1]
    (zero,) = graphs.asg_alignment_graph([[2, 0, 1]], dtype=torch.float64)
    assert zero.weight.dtype == torch.float64 and not zero.weight.any()


def test_transition_graph_is_the_bigram_graph_with_the_start_row_first():
    transitions = torch.arange(12.0).reshape(4, 3)
    graph = graphs.asg_transition_graph(3, transitions)
    bigram = graphs.ngram_transition_graph(3, 2)
    for field in ("src", "dst", "ilabel", "olabel", "start", "accept"):
        assert getattr(graph, field).tolist() == getattr(bigram, field).tolist()
    # The arc into token j (node 1 + j) from node 0 (start) or node 1 + i weighs transitions[V or i, j].
    rows = torch.where(graph.src == 0, 3, graph.src - 1)
    assert graph.weight.tolist() == transitions[rows, graph.dst - 1].tolist()
    assert graph.ilabel.tolist() == (graph.dst - 1).tolist()


def test_gradcheck_emissions_and_transitions():
    emissions, transitions = random_case(11, frames=4)
    emissions.requires_grad_(True)
    transitions.requires_grad_(True)
    loss = ASGLoss(3, reduction="mean").double()
    targets, target_lengths = torch.tensor([[0, 1], [2, 0], [1, 2], [0, 0]]), torch.tensor([2, 2, 2, 1])

    def f(x, trans):
        return torch.func.functional_call(loss, {"transitions": trans}, (x, targets, [4, 3, 4, 2], target_lengths))

    assert torch.autograd.gradcheck(f, (emissions, transitions))


def test_learns_to_segment_from_sequence_labels():
    """A linear model over noisy frame features learns each frame's token only from
    unsegmented targets; greedy decoding then recovers held-out sequences."""
    torch.manual_seed(0)
    vocab, frames, dim, count = 4, 12, 8, 64
    prototypes = torch.randn(vocab, dim)

    def utterances(n):
        """Random token sequences (no immediate repeats), each token lasting 1-4 frames."""
        targets, features = [], []
        for _ in range(n):
            labels = [int(torch.randint(vocab, ()))]
            while len(labels) < frames:
                token = labels[-1] if torch.rand(()) < 0.6 else int((labels[-1] + torch.randint(1, vocab, ())) % vocab)
                labels.append(token)
            targets.append(collapse(labels))
            features.append(prototypes[labels] + 0.2 * torch.randn(frames, dim))
        return targets, torch.stack(features)

    def padded(targets):
        out = torch.zeros(len(targets), max(map(len, targets)), dtype=torch.long)
        for b, t in enumerate(targets):
            out[b, : len(t)] = torch.tensor(t)
        return out, torch.tensor([len(t) for t in targets])

    def greedy(model, features):
        return [collapse(row) for row in model(features).argmax(-1).tolist()]

    train_targets, train_features = utterances(count)
    test_targets, test_features = utterances(32)
    targets, target_lengths = padded(train_targets)
    lengths = torch.full((count,), frames)
    model = torch.nn.Linear(dim, vocab)
    criterion = ASGLoss(vocab)
    optimizer = torch.optim.Adam([*model.parameters(), *criterion.parameters()], lr=0.05)
    first = criterion(model(train_features), targets, lengths, target_lengths).item()
    for _ in range(60):
        optimizer.zero_grad()
        value = criterion(model(train_features), targets, lengths, target_lengths)
        value.backward()
        optimizer.step()
    assert value.item() < 0.05 * first
    assert greedy(model, test_features) == test_targets
    assert greedy(model, train_features) == train_targets
