"""Word-piece graphs: every segmentation of a text into the pieces of an inventory, and the
CTC alignments of any token acceptor (such as those segmentations), built directly.

Text convention (sentencepiece's): with `word_marker="▁"` the text "the cat" is matched as
"▁the▁cat" (each whitespace-separated word prefixed by the marker), and pieces are strings
over that alphabet ("▁the", "▁c", "at", "t", ...). With `word_marker=None` a text is matched
verbatim (a space is an ordinary character).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from ._arrays import CSR
from ._batch import Batch, assemble, per_batch
from .graph import EPSILON, Graph
from .structure import connect

WORD_MARKER = "\u2581"  # sentencepiece's "▁"


def mark_words(text: str, word_marker: str | None = WORD_MARKER) -> str:
    """The text as pieces spell it: each whitespace-separated word prefixed by the marker
    ("the cat" -> "▁the▁cat"); unchanged when `word_marker` is None."""
    if word_marker is None:
        return text
    return "".join(word_marker + word for word in text.split())


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)


def segmentation_graph(texts: Sequence[str], pieces: Sequence[str], labels=None,
                       word_marker: str | None = WORD_MARKER, device=None, dtype=torch.float32) -> list[Graph]:
    """For each text, an acceptor of every segmentation of it into pieces (weights 0).

    Node i means "the first i characters are covered" (start 0, accept len(text)); a piece p
    matching the text at i gives an arc i -> i + len(p) labelled `labels[p]` (default: the
    piece's index). The graphs are trimmed to complete segmentations, so a text without one
    gives a graph with no nodes (it accepts nothing); the empty text accepts only the empty
    sequence. Texts are marked with `mark_words` first.

    Vectorised: the texts are laid end to end with a separator (so no match crosses a text
    boundary), and for each distinct piece length L every L-character window is matched
    against all pieces of length L at once; the only loop is over piece lengths.
    """
    texts = [mark_words(text, word_marker) for text in texts]
    pieces = list(pieces)
    if any(not piece for piece in pieces):
        raise ValueError("segmentation_graph: pieces must be non-empty strings")
    if len(set(pieces)) != len(pieces):
        raise ValueError("segmentation_graph: pieces must be distinct")
    labels = np.arange(len(pieces)) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size != len(pieces) or (labels < 0).any():
        raise ValueError(f"segmentation_graph: need {len(pieces)} non-negative labels, got {labels.tolist()}")
    device = torch.device(device or "cpu")
    if not texts:
        return []
    sizes = np.array([len(text) for text in texts], dtype=np.int64)
    ends = np.cumsum(sizes + 1) - 1  # position of the separator after each text = its accept node
    codes = _code_points("".join(text + "\0" for text in texts))
    codes[ends] = -1  # no piece contains -1, so no window across a separator matches
    piece_sizes = np.array([len(piece) for piece in pieces], dtype=np.int64)
    piece_codes = _code_points("".join(pieces))
    piece_first = np.cumsum(piece_sizes) - piece_sizes
    src, piece = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for size in np.unique(piece_sizes[piece_sizes <= codes.size]):
        which = np.flatnonzero(piece_sizes == size)
        rows = piece_codes[piece_first[which, None] + np.arange(size)]
        windows = sliding_window_view(codes, int(size))
        _, group = np.unique(np.concatenate([rows, windows]), axis=0, return_inverse=True)
        group = group.reshape(-1)
        piece_of_group = np.full(int(group.max()) + 1, -1, dtype=np.int64)
        piece_of_group[group[: which.size]] = which
        matched = piece_of_group[group[which.size:]]
        at = np.flatnonzero(matched >= 0)
        src.append(at)
        piece.append(matched[at])
    src, piece = np.concatenate(src), np.concatenate(piece)
    arc_labels = labels[piece]
    lattices = assemble(
        len(texts), np.repeat(np.arange(len(texts)), sizes + 1), src, src + piece_sizes[piece], arc_labels,
        arc_labels, torch.zeros(src.size, dtype=dtype, device=device), ends - sizes, ends, device, dtype,
    )
    return connect(lattices)


def ctc_alignments(acceptors: Graph | Sequence[Graph], blank: int = 0) -> Graph | list[Graph]:
    """The CTC alignment graph of any epsilon-free token acceptor: every frame-label sequence
    that collapses (merge repeats, drop blanks) to a token sequence the acceptor accepts,
    weighted like the acceptor path it spells. Same paths and weights as
    project_input(compose(ctc_topology(V, blank), acceptor)), built directly in
    O(arcs x out-degree) without the V^2-arc topology.

    Nodes: the acceptor's own nodes n ("at n, between tokens": blank self-loops, same start
    and accept nodes), then one node per distinct (destination m, label p) of its arcs ("at m,
    inside a run of p frames": p self-loop, blank arc to m, accepts where m does). An acceptor
    arc (n -> m, p, w) becomes arcs labelled p with weight w into (m, p) from n and from every
    (n, q) with q != p (a different token needs no blank in between).
    """

    def run(batch: Batch) -> list[Graph]:
        if not np.array_equal(batch.ilabel, batch.olabel) or (batch.ilabel == EPSILON).any():
            raise ValueError("ctc_alignments: graphs must be epsilon-free acceptors (see remove_epsilon)")
        if (batch.ilabel == blank).any():
            raise ValueError(f"ctc_alignments: graphs must not use the blank ({blank})")
        n, base = batch.num_nodes, int(batch.ilabel.max(initial=0)) + 1
        keys, run_of = np.unique(batch.dst * base + batch.ilabel, return_inverse=True)  # run each arc enters
        run_node, run_label = keys // base, keys % base
        runs = n + np.arange(keys.size)
        nodes = np.arange(n)
        arcs, owner = CSR(batch.src, n).gather(run_node)  # arcs leaving each run's node
        change = batch.ilabel[arcs] != run_label[owner]
        arcs, owner = arcs[change], owner[change]
        src = np.concatenate([nodes, batch.src, runs, runs, runs[owner]])
        dst = np.concatenate([nodes, runs[run_of], runs, run_node, runs[run_of[arcs]]])
        label = np.concatenate([np.full(n, blank), batch.ilabel, run_label, np.full(keys.size, blank),
                                batch.ilabel[arcs]])
        # Acceptor arc whose weight each new arc carries (num_arcs: none, weight 0).
        none = batch.num_arcs
        source = np.concatenate([np.full(n, none), np.arange(none), np.full(2 * keys.size, none), arcs])
        padded = torch.cat([batch.weight, torch.zeros(1, dtype=batch.dtype, device=batch.device)])
        is_accept = np.zeros(n, dtype=bool)
        is_accept[batch.accept] = True
        accept = np.concatenate([batch.accept, runs[is_accept[run_node]]])
        return assemble(
            batch.size, np.concatenate([batch.node_graph, batch.node_graph[run_node]]), src, dst, label, label,
            padded.index_select(0, batch.tensor(source)), batch.start, accept, batch.device, batch.dtype,
        )

    return per_batch(run, acceptors)
