"""A synthetic speech-like task for learning tests: tokens rendered as runs of noisy frames.

Each token has a random prototype vector; an utterance is its token sequence with every
token held for 2-3 frames, silences (zero prototype) between some tokens, plus noise. A
small GRU must learn to emit the tokens; greedy decoding must then recover held-out
transcripts.
"""

from __future__ import annotations

import torch


def make_task(num_tokens: int = 5, count: int = 96, dim: int = 16, seed: int = 0):
    """Returns (features [N, T, dim], input_lengths [N], targets [N, U] padded, target_lengths [N])."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_tokens, dim, generator=g) * 2.0
    prototypes[0] = 0.0  # token 0 is the blank / silence
    sequences, frames = [], []
    for _ in range(count):
        length = int(torch.randint(2, 5, (1,), generator=g))
        tokens = torch.randint(1, num_tokens, (length,), generator=g)
        rendered = []
        for token in tokens.tolist():
            if torch.rand(1, generator=g) < 0.5:
                rendered.append(0)
            rendered.extend([token] * int(torch.randint(2, 4, (1,), generator=g)))
        rendered.append(0)
        sequences.append(tokens)
        frames.append(prototypes[torch.tensor(rendered)] + 0.5 * torch.randn(len(rendered), dim, generator=g))
    input_lengths = torch.tensor([f.shape[0] for f in frames])
    features = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    target_lengths = torch.tensor([s.numel() for s in sequences])
    targets = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True)
    return features, input_lengths, targets, target_lengths


class TinyModel(torch.nn.Module):
    def __init__(self, dim: int, num_tokens: int):
        super().__init__()
        self.rnn = torch.nn.GRU(dim, 32, batch_first=True, bidirectional=True)
        self.out = torch.nn.Linear(64, num_tokens)

    def forward(self, features):
        return self.out(self.rnn(features)[0]).log_softmax(-1)


def greedy_token_error(log_probs, input_lengths, targets, target_lengths, blank: int = 0) -> float:
    """Token error rate of argmax decoding with CTC collapsing (edit distance / reference tokens)."""
    errors = total = 0
    best = log_probs.argmax(-1)
    for b in range(best.shape[0]):
        path = best[b, : input_lengths[b]].tolist()
        hyp = [t for i, t in enumerate(path) if t != blank and (i == 0 or path[i - 1] != t)]
        ref = targets[b, : target_lengths[b]].tolist()
        errors += edit_distance(hyp, ref)
        total += len(ref)
    return errors / total


def edit_distance(a, b) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def train(loss_fn, num_tokens: int = 5, steps: int = 250, seed: int = 0):
    """Train TinyModel with `loss_fn(log_probs, targets, input_lengths, target_lengths)`;
    returns (first loss, last loss, held-out greedy token error)."""
    torch.manual_seed(seed)
    features, input_lengths, targets, target_lengths = make_task(num_tokens, seed=seed)
    train_set, test_set = slice(0, 80), slice(80, None)
    model = TinyModel(features.shape[-1], num_tokens)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(getattr(loss_fn, "parameters", list)()), lr=0.01)
    losses = []
    for step in range(steps):
        batch = slice((step * 16) % 80, (step * 16) % 80 + 16)
        x, il = features[train_set][batch], input_lengths[train_set][batch]
        loss = loss_fn(model(x[:, : il.max()]), targets[train_set][batch], il, target_lengths[train_set][batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        log_probs = model(features[test_set])
    error = greedy_token_error(log_probs, input_lengths[test_set], targets[test_set], target_lengths[test_set])
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10, error
