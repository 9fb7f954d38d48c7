"""Graph builders for speech: emissions, label sequences, CTC alignment graphs and topologies.

Each builder creates its arcs with NumPy in one vectorized call (several graphs
at once where it takes several sequences). Labels follow the graph conventions:
0..V-1 index emission columns (the CTC blank is usually 0), EPSILON is -1.
"""

from __future__ import annotations

import numpy as np
import torch

from ._arrays import owner_and_step
from ._batch import assemble
from .graph import EPSILON, Graph


def label_sequences(sequences, lengths=None) -> list[np.ndarray]:
    """Label sequences as int64 arrays, from a list of lists/arrays/tensors or a padded [B, U]
    tensor with lengths: the `targets` argument every sequence builder takes."""
    if isinstance(sequences, torch.Tensor) and sequences.dim() == 2:
        rows = sequences.detach().cpu().numpy().astype(np.int64)
        if lengths is None:
            return list(rows)
        lengths = torch.as_tensor(lengths).cpu().numpy()
        return [row[: int(n)] for row, n in zip(rows, lengths)]
    if lengths is not None:
        raise ValueError("lengths go with a padded [B, U] tensor of sequences")
    return [np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s, dtype=np.int64).reshape(-1) for s in sequences]


def linear_graph(num_steps: int, num_labels: int, weight: torch.Tensor | None = None) -> Graph:
    """gtn's linear graph: num_steps + 1 nodes in a chain, one arc per label between consecutive
    nodes (arc t * num_labels + l has label l). `weight` [num_steps, num_labels] (e.g. emissions,
    may require grad) becomes the arc weights; default 0."""
    step = np.repeat(np.arange(num_steps), num_labels)
    labels = np.tile(np.arange(num_labels), num_steps)
    if weight is not None and tuple(weight.shape) != (num_steps, num_labels):
        raise ValueError(f"linear_graph: weight must have shape ({num_steps}, {num_labels}), got {tuple(weight.shape)}")
    return Graph.from_arrays(
        step, step + 1, labels, weight=None if weight is None else weight.reshape(-1),
        start=[0], accept=[num_steps], num_nodes=num_steps + 1,
        device=None if weight is None else weight.device,
    )


def sequence_graph(sequences, lengths=None, olabels=None, device=None, dtype=torch.float32) -> list[Graph]:
    """One linear graph per label sequence (an acceptor, or a transducer when `olabels`
    gives output sequences of the same lengths); weights 0."""
    inputs = label_sequences(sequences, lengths)
    outputs = inputs if olabels is None else label_sequences(olabels, lengths)
    sizes = np.array([s.size for s in inputs], dtype=np.int64)
    if any(o.size != i.size for i, o in zip(inputs, outputs)):
        raise ValueError("sequence_graph: input and output sequences must have equal lengths")
    node_offset = np.concatenate([[0], np.cumsum(sizes + 1)])
    owner, step = owner_and_step(sizes)
    src = node_offset[owner] + step
    empty = np.empty(0, dtype=np.int64)
    device = torch.device(device or "cpu")
    return assemble(
        len(inputs), np.repeat(np.arange(len(inputs)), sizes + 1), src, src + 1,
        np.concatenate(inputs) if inputs else empty, np.concatenate(outputs) if outputs else empty,
        torch.zeros(int(sizes.sum()), dtype=dtype, device=device), node_offset[:-1], node_offset[1:] - 1, device, dtype,
    )


def ctc_graph(targets, lengths=None, blank: int = 0, device=None, dtype=torch.float32) -> list[Graph]:
    """The CTC alignment graph of each target token sequence, built directly (not by composition).

    Node 0 is the start (no frame consumed yet); node 1 + s is CTC state s of 2U + 1 (even s:
    blank, odd s: token). Every arc consumes one frame and carries the label of the state it
    enters: self-loops, steps to the next state, and skips over a blank between different tokens.
    The last blank and last token states accept (for U = 0, the blank state and the start).
    """
    seqs = label_sequences(targets, lengths)
    if any((s == blank).any() or (s < 0).any() for s in seqs):
        raise ValueError(f"ctc_graph: targets must not contain the blank ({blank}) or negative labels")
    units = np.array([s.size for s in seqs], dtype=np.int64)
    states = 2 * units + 1
    node_offset = np.concatenate([[0], np.cumsum(states + 1)])
    # Label of every CTC state, all graphs concatenated.
    owner, s = owner_and_step(states)
    tokens = np.concatenate(seqs) if seqs else np.empty(0, dtype=np.int64)
    token_start = np.concatenate([[0], np.cumsum(units)])[:-1]
    is_token = s % 2 == 1
    label = np.full(s.size, blank, dtype=np.int64)
    label[is_token] = tokens[token_start[owner[is_token]] + s[is_token] // 2]
    node = node_offset[owner] + 1 + s  # node id of each state
    start = node_offset[:-1]
    # Arcs: enter state 0 or 1 from the start node, self-loops, +1 steps, +2 skips.
    first = s <= 1
    step = s >= 1
    same_as_prev2 = np.zeros(s.size, dtype=bool)
    same_as_prev2[2:] = label[2:] == label[:-2]
    skip = is_token & (s >= 3) & ~same_as_prev2
    src = np.concatenate([start[owner[first]], node, node[step] - 1, node[skip] - 2])
    dst = np.concatenate([node[first], node, node[step], node[skip]])
    arc_label = np.concatenate([label[first], label, label[step], label[skip]])
    last = s >= states[owner] - 2
    accept = np.concatenate([node[last], start[units == 0]])
    device = torch.device(device or "cpu")
    return assemble(
        len(seqs), np.repeat(np.arange(len(seqs)), states + 1), src, dst, arc_label, arc_label,
        torch.zeros(src.size, dtype=dtype, device=device), start, accept, device, dtype,
    )


def ctc_topology(num_tokens: int, blank: int = 0, modified: bool = False, device=None, dtype=torch.float32) -> Graph:
    """CTC topology H: a transducer from frame labels (input) to tokens (output) that
    collapses repeats and drops blanks. Node 0 is the blank state and the start, node 1 + i
    the state of the i-th non-blank token; every node accepts.

    Standard: O(V^2) arcs (token i to token j directly). Modified (k2's): O(V) arcs, every
    token state returns to the blank state through an epsilon arc, so repeated frames of a
    token may also mean the token repeated."""
    tokens = np.array([t for t in range(num_tokens) if t != blank], dtype=np.int64)
    k = tokens.size
    state = 1 + np.arange(k)
    eps = np.full(k, EPSILON)
    parts = [
        (np.array([0]), np.array([0]), np.array([blank]), np.array([EPSILON])),  # blank loop
        (np.zeros(k, dtype=np.int64), state, tokens, tokens),  # enter a token, emit it
        (state, state, tokens, eps),  # stay on a token
    ]
    if modified:
        parts.append((state, np.zeros(k, dtype=np.int64), eps, eps))  # back to blank without a frame
    else:
        parts.append((state, np.zeros(k, dtype=np.int64), np.full(k, blank), eps))  # blank after a token
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        change = (i != j).reshape(-1)
        parts.append((state[i.reshape(-1)[change]], state[j.reshape(-1)[change]],
                      tokens[j.reshape(-1)[change]], tokens[j.reshape(-1)[change]]))  # a different token
    src, dst, ilabel, olabel = (np.concatenate([p[n] for p in parts]) for n in range(4))
    return Graph.from_arrays(src, dst, ilabel, olabel, start=[0], accept=np.arange(k + 1),
                             num_nodes=k + 1, device=device, dtype=dtype)


def ngram_transition_graph(num_tokens: int, n: int = 2, weight: torch.Tensor | None = None,
                           device=None, dtype=torch.float32) -> Graph:
    """An acceptor of all token sequences scored by token n-gram transitions (learnable).

    Nodes are histories: node 0 is the empty history (the start); then every history of
    length 1, 2, ..., n - 1 (a history of length k < n - 1 is only reached at the start of a
    sequence). The arc for token t from history h goes to (h + t)'s last n - 1 tokens, so
    arc weights are the log-scores of t given h. Arcs are ordered by (history node, token):
    the arc for (node h, token t) has index h * num_tokens + t. Every node accepts. `weight`
    (e.g. an nn.Parameter of shape [num_nodes * num_tokens]) becomes the arc weights.
    """
    if n < 1:
        raise ValueError(f"ngram_transition_graph: n must be >= 1, got {n}")
    # Histories of length k are numbered after all shorter ones, in base-num_tokens order.
    sizes = num_tokens ** np.arange(n)  # number of histories of each length 0..n-1
    first = np.concatenate([[0], np.cumsum(sizes)])[:-1]
    num_nodes = int(sizes.sum())
    length = np.repeat(np.arange(n), sizes)
    code = np.arange(num_nodes) - first[length]  # the history as a base-num_tokens number
    src = np.repeat(np.arange(num_nodes), num_tokens)
    token = np.tile(np.arange(num_tokens), num_nodes)
    src_length = length[src]
    grown = src_length < n - 1
    new_length = np.where(grown, src_length + 1, n - 1)
    keep = num_tokens ** np.maximum(new_length - 1, 0)  # drop the oldest token when full
    new_code = np.where(grown, code[src] * num_tokens + token, (code[src] % keep) * num_tokens + token)
    dst = first[new_length] + new_code if n > 1 else np.zeros_like(src)
    if weight is not None and weight.numel() != src.size:
        raise ValueError(f"ngram_transition_graph: weight needs {src.size} entries, got {weight.numel()}")
    return Graph.from_arrays(src, dst, token, weight=weight, start=[0], accept=np.arange(num_nodes),
                             num_nodes=num_nodes, device=device, dtype=None if weight is not None else dtype)


def alternatives_graph(segments, device=None, dtype=torch.float32) -> Graph:
    """An acceptor of every label sequence that takes one alternative of each segment, in order:
    `segments[i]` lists the label sequences segment i may be (e.g. every pronunciation of word
    i of a transcript). Nodes 0..S are the boundaries (0 starts, S accepts); each alternative is
    a chain of its own from node i to node i + 1. Weights 0."""
    owners = np.array([i for i, alternatives in enumerate(segments) for _ in alternatives], dtype=np.int64)
    chains = [np.asarray(labels, dtype=np.int64).reshape(-1) for alternatives in segments for labels in alternatives]
    lengths = np.array([chain.size for chain in chains], dtype=np.int64)
    if any(not alternatives for alternatives in segments) or (lengths == 0).any():
        raise ValueError("alternatives_graph: every segment needs at least one non-empty alternative")
    boundaries = len(segments) + 1
    owner, step = owner_and_step(lengths)
    first_internal = boundaries + np.concatenate([[0], np.cumsum(lengths - 1)])[:-1]
    internal = first_internal[owner] + step  # chain c's node after its label `step` (unless it is the last)
    src = np.where(step == 0, owners[owner], internal - 1)
    dst = np.where(step == lengths[owner] - 1, owners[owner] + 1, internal)
    labels = np.concatenate(chains) if chains else np.empty(0, dtype=np.int64)
    return Graph.from_arrays(src, dst, labels, start=[0], accept=[boundaries - 1],
                             num_nodes=boundaries + int((lengths - 1).sum()), device=device, dtype=dtype)


def lexicon_graph(pronunciations, device=None, dtype=torch.float32) -> Graph:
    """L: a transducer from token sequences to word sequences (the closure of the lexicon).

    `pronunciations` is a list of (word label, token labels), several entries per word for
    variants. Node 0 starts and accepts; each pronunciation is a chain leaving node 0 whose
    first arc carries the word as output (epsilon on the rest) and whose last arc returns to
    node 0, so a word's identity is known after its first token.
    """
    words = np.array([w for w, _ in pronunciations], dtype=np.int64)
    prons = [np.asarray(t, dtype=np.int64).reshape(-1) for _, t in pronunciations]
    lengths = np.array([p.size for p in prons], dtype=np.int64)
    if (lengths == 0).any():
        raise ValueError(f"lexicon_graph: word {int(words[np.argmax(lengths == 0)])} has an empty pronunciation")
    owner, step = owner_and_step(lengths)
    # Pronunciation i owns internal nodes first_node[i] .. first_node[i] + len - 2.
    first_node = 1 + np.concatenate([[0], np.cumsum(lengths - 1)])[:-1]
    internal = first_node[owner] + step
    src = np.where(step == 0, 0, internal - 1)
    dst = np.where(step == lengths[owner] - 1, 0, internal)
    tokens = np.concatenate(prons) if prons else np.empty(0, dtype=np.int64)
    olabel = np.where(step == 0, words[owner], EPSILON)
    return Graph.from_arrays(src, dst, tokens, olabel, start=[0], accept=[0],
                             num_nodes=1 + int((lengths - 1).sum()), device=device, dtype=dtype)
