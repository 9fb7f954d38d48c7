"""ASG (Auto Segmentation criterion, wav2letter) graphs: per-target alignment graphs and the
fully connected normalization graph, both scored by one learnable transition matrix.

`transitions` is a [V + 1, V] tensor of log-domain scores: `transitions[i, j]` scores token j
following token i (a self-loop when i == j, i.e. the token lasting one more frame), and row V
scores the first token. Arc weights are gathers from it, so gradients reach it.
"""

from __future__ import annotations

import numpy as np
import torch

from ._arrays import owner_and_step
from ._batch import assemble
from .builders import label_sequences, ngram_transition_graph
from .graph import Graph


def _check_transitions(transitions: torch.Tensor, num_tokens: int | None = None) -> int:
    """The number of tokens V of a [V + 1, V] transition matrix (checked against num_tokens)."""
    if transitions.dim() != 2 or transitions.shape[0] != transitions.shape[1] + 1:
        raise ValueError(f"ASG transitions must have shape [V + 1, V], got {tuple(transitions.shape)}")
    if num_tokens is not None and transitions.shape[1] != num_tokens:
        raise ValueError(f"ASG transitions are for {transitions.shape[1]} tokens, expected {num_tokens}")
    return transitions.shape[1]


def asg_alignment_graph(targets, lengths=None, transitions: torch.Tensor | None = None,
                        device=None, dtype=torch.float32) -> list[Graph]:
    """The ASG alignment graph of each target token sequence: every token lasts >= 1 frames.

    Node 0 is the start, node 1 + u the u-th token; the arc into node 1 + u (from node u)
    and node 1 + u's self-loop both carry token u's label, so each path of T arcs is a frame
    labelling that collapses (merge repeats) to the target. The last token's node accepts
    (for an empty target, the start). Weights: transitions[V, first token] on entering the
    first token, transitions[i, j] on advancing from i to j, transitions[j, j] on a
    self-loop; zero without `transitions` (then `dtype`; otherwise its dtype and device).

    Immediate repeats ("a a") would merge into one token, so they are rejected: encode them
    with a repetition token as wav2letter does (e.g. "a <rep1>").
    """
    seqs = label_sequences(targets, lengths)
    units = np.array([s.size for s in seqs], dtype=np.int64)
    tokens = np.concatenate(seqs) if seqs else np.empty(0, dtype=np.int64)
    owner, u = owner_and_step(units)
    if (tokens < 0).any():
        raise ValueError("asg_alignment_graph: targets must not contain negative labels")
    if transitions is not None and (tokens >= _check_transitions(transitions)).any():
        raise ValueError(f"asg_alignment_graph: targets must lie in [0, {transitions.shape[1]})")
    repeat = np.zeros(tokens.size, dtype=bool)
    repeat[1:] = (tokens[1:] == tokens[:-1]) & (u[1:] > 0)
    if repeat.any():
        b = int(owner[np.argmax(repeat)])
        raise ValueError(f"asg_alignment_graph: target {b} repeats a token immediately "
                         f"({seqs[b].tolist()}); ASG would merge it, so encode repeats with a "
                         "repetition token as wav2letter does (e.g. 'a <rep1>' for 'a a')")
    node_offset = np.concatenate([[0], np.cumsum(units + 1)])
    node = node_offset[owner] + 1 + u
    # Per target: enter token 0, its self-loop, enter token 1, its self-loop, ...
    src = np.stack([node - 1, node], axis=1).reshape(-1)
    dst = np.repeat(node, 2)
    label = np.repeat(tokens, 2)
    if transitions is None:
        device = torch.device(device or "cpu")
        weight = torch.zeros(src.size, dtype=dtype, device=device)
    else:
        num_tokens = transitions.shape[1]
        previous = np.where(u > 0, np.roll(tokens, 1), num_tokens)  # row V: the start
        index = np.stack([previous * num_tokens + tokens, tokens * num_tokens + tokens], axis=1).reshape(-1)
        device, dtype = transitions.device, transitions.dtype
        weight = transitions.reshape(-1)[torch.from_numpy(index).to(device)]
    return assemble(
        len(seqs), np.repeat(np.arange(len(seqs)), units + 1), src, dst, label, label, weight,
        node_offset[:-1], node_offset[:-1] + units, device, dtype,
    )


def asg_transition_graph(num_tokens: int, transitions: torch.Tensor | None = None,
                         device=None, dtype=torch.float32) -> Graph:
    """ASG's normalization graph: every token sequence, scored by the same transitions.

    It is `ngram_transition_graph(num_tokens, 2)` (node 0 the start, node 1 + i "last token
    was i", every node accepts; the arc for (node h, token j) has index h * V + j and enters
    node 1 + j), with `transitions` rolled so its start row V comes first: the arc into j
    from the start weighs transitions[V, j], from node 1 + i transitions[i, j]. Every frame
    labelling is one path, so with emissions this sums over all labellings (the fully
    connected "FCC" term of wav2letter's ASG).
    """
    if transitions is None:
        return ngram_transition_graph(num_tokens, 2, device=device, dtype=dtype)
    _check_transitions(transitions, num_tokens)
    return ngram_transition_graph(num_tokens, 2, weight=transitions.roll(1, dims=0).reshape(-1), device=device)
