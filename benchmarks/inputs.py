"""Seeded benchmark inputs, built as NumPy arc arrays, plus converters to our
`graphs.Graph` and to a pywrapfst FST (so both sides see exactly the same graph).

Every builder returns an `ArcArrays` in our conventions: labels `0..V-1`,
`EPSILON == -1`, weights are log-domain scores (higher is better), any number
of start and accept nodes, no final weights.

Mapping to OpenFst (same as tests/graphs/oracle.py): label x <-> x + 1 (so our
EPSILON -1 is OpenFst's 0), score w <-> cost -w, accept node <-> final weight
One, several start nodes <-> one new start state with epsilon arcs to them.

Builders:
  lexicon_arrays(num_words)          words spelled in letters, closure, word label on first arc
  bigram_arrays(num_words)           back-off bigram grammar acceptor
  dense_emission_arrays(T, V)        linear-chain acceptor with V parallel arcs per frame
  ctc_arrays(target)                 standard CTC alignment graph (2U+1 states)
  random_target(U, V)                a seeded target label sequence in 1..V-1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = -1


@dataclass
class ArcArrays:
    """A graph as NumPy arrays in our conventions."""

    src: np.ndarray  # int64 [A]
    dst: np.ndarray  # int64 [A]
    ilabel: np.ndarray  # int64 [A]
    olabel: np.ndarray  # int64 [A]
    weight: np.ndarray  # float32 [A], log-domain score
    start: np.ndarray  # int64
    accept: np.ndarray  # int64
    num_nodes: int
    info: dict = field(default_factory=dict)  # builder-specific extras (spellings, logits, ...)

    @property
    def num_arcs(self) -> int:
        return int(self.src.size)

    def sort_arcs(self, by: str = "ilabel") -> "ArcArrays":
        """Reorder arcs by (src, label) -- what OpenFst's arcsort does -- and return self."""
        key = self.ilabel if by == "ilabel" else self.olabel
        order = np.lexsort((key, self.src))
        for name in ("src", "dst", "ilabel", "olabel", "weight"):
            setattr(self, name, getattr(self, name)[order])
        return self


# --------------------------------------------------------------------------- builders
def lexicon_arrays(
    num_words: int = 5000,
    num_letters: int = 26,
    min_len: int = 3,
    max_len: int = 10,
    seed: int = 0,
) -> ArcArrays:
    """Lexicon transducer letters -> words, as a closure around node 0.

    Word w (spelled with `n` letters, n uniform in [min_len, max_len]) is a path
    0 -> ... -> 0 of n arcs: the FIRST arc reads letter 0 and writes word w, the
    others read their letter and write EPSILON; the last arc returns to node 0.
    Node 0 is the only start and the only accept node. Input labels are letters
    0..num_letters-1, output labels are words 0..num_words-1.
    Nodes: 1 + sum(n - 1); arcs: sum(n).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=num_words).astype(np.int64)
    total = int(lengths.sum())
    letters = rng.integers(0, num_letters, size=total).astype(np.int64)
    word = np.repeat(np.arange(num_words, dtype=np.int64), lengths)
    first_arc = np.cumsum(lengths) - lengths  # index of each word's first arc
    k = np.arange(total, dtype=np.int64) - first_arc[word]  # position within the word
    n = lengths[word]
    base = 1 + np.cumsum(lengths - 1) - (lengths - 1)  # first internal node of each word
    node_k = base[word] + k  # internal node reached after letter k (k < n-1)
    src = np.where(k == 0, 0, node_k - 1)
    dst = np.where(k == n - 1, 0, node_k)
    olabel = np.where(k == 0, word, EPS)
    num_nodes = 1 + int((lengths - 1).sum())
    return ArcArrays(
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        ilabel=letters,
        olabel=olabel.astype(np.int64),
        weight=np.zeros(total, dtype=np.float32),
        start=np.array([0], dtype=np.int64),
        accept=np.array([0], dtype=np.int64),
        num_nodes=num_nodes,
        info={"lengths": lengths, "letters": letters, "num_letters": num_letters},
    )


def bigram_arrays(
    num_words: int = 5000,
    num_bigrams: int = 100_000,
    zipf: float = 1.0,
    seed: int = 1,
) -> ArcArrays:
    """Back-off bigram grammar acceptor over words 0..num_words-1.

    Nodes: 0 is the unigram / back-off state (also the only start node: the
    sentence-start context backs straight off to unigrams); node w+1 is the
    history state "last word was w". Every node accepts (no sentence-end
    symbol), so L o G stays a closure-like graph where every word boundary can
    end.
    Arcs:
      * seen bigrams h -> w: (h+1) -> (w+1), label w, weight log P(w|h);
        `num_bigrams` distinct (h, w) pairs, h uniform, w Zipf-distributed;
      * back-off: (h+1) -> 0, label EPSILON, weight log alpha(h);
      * unigrams: 0 -> (w+1), label w, weight log P(w) (Zipf).
    Per history, the seen bigram probabilities sum to a discount d_h ~ U(0.5, 0.9)
    and alpha(h) = 1 - d_h (a Katz-like shape; not exactly normalized).
    Arcs are sorted by (src, ilabel), with back-off (EPSILON) first per state.
    """
    rng = np.random.default_rng(seed)
    V = num_words
    rank_p = 1.0 / np.arange(1, V + 1, dtype=np.float64) ** zipf
    rank_p /= rank_p.sum()
    word_of_rank = rng.permutation(V)
    unigram = np.empty(V)
    unigram[word_of_rank] = rank_p
    num_bigrams = min(num_bigrams, V * V)
    keys = np.empty(0, dtype=np.int64)
    while keys.size < num_bigrams:
        m = int((num_bigrams - keys.size) * 1.5) + 16
        h = rng.integers(0, V, size=m)
        w = rng.choice(V, size=m, p=unigram)
        keys = np.unique(np.concatenate([keys, h * V + w]))
    keys = np.sort(rng.choice(keys, size=num_bigrams, replace=False))
    h, w = keys // V, keys % V
    raw = rng.gamma(1.0, size=num_bigrams)
    per_h = np.bincount(h, weights=raw, minlength=V)
    discount = rng.uniform(0.5, 0.9, size=V)
    p_bigram = raw / per_h[h] * discount[h]
    has_bigrams = np.bincount(h, minlength=V) > 0
    alpha = np.where(has_bigrams, 1.0 - discount, 1.0)

    words = np.arange(V, dtype=np.int64)
    src = np.concatenate([h + 1, words + 1, np.zeros(V, dtype=np.int64)])
    dst = np.concatenate([w + 1, np.zeros(V, dtype=np.int64), words + 1])
    label = np.concatenate([w, np.full(V, EPS, dtype=np.int64), words])
    weight = np.concatenate([np.log(p_bigram), np.log(alpha), np.log(unigram)]).astype(np.float32)
    arrays = ArcArrays(
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        ilabel=label.astype(np.int64),
        olabel=label.astype(np.int64).copy(),
        weight=weight,
        start=np.array([0], dtype=np.int64),
        accept=np.arange(V + 1, dtype=np.int64),
        num_nodes=V + 1,
        info={"num_bigrams": num_bigrams},
    )
    return arrays.sort_arcs("ilabel")


def dense_emission_arrays(num_frames: int = 1000, num_labels: int = 30, seed: int = 2) -> ArcArrays:
    """Linear-chain acceptor: node t -> t+1 has `num_labels` parallel arcs, label
    v with weight log_softmax(logits[t])[v] (logits standard normal, seeded).
    Start node 0, accept node T. `info["log_probs"]` is the [T, V] float32 matrix."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((num_frames, num_labels))
    m = logits.max(axis=1, keepdims=True)
    log_probs = (logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))).astype(np.float32)
    frames = np.repeat(np.arange(num_frames, dtype=np.int64), num_labels)
    labels = np.tile(np.arange(num_labels, dtype=np.int64), num_frames)
    return ArcArrays(
        src=frames,
        dst=frames + 1,
        ilabel=labels,
        olabel=labels.copy(),
        weight=log_probs.reshape(-1).copy(),
        start=np.array([0], dtype=np.int64),
        accept=np.array([num_frames], dtype=np.int64),
        num_nodes=num_frames + 1,
        info={"log_probs": log_probs},
    )


def random_target(length: int = 100, num_labels: int = 30, seed: int = 3) -> np.ndarray:
    """A target sequence of `length` labels drawn uniformly from 1..num_labels-1 (0 is blank)."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, num_labels, size=length).astype(np.int64)


def ctc_arrays(target: np.ndarray, blank: int = 0) -> ArcArrays:
    """Standard CTC alignment acceptor for `target` (length U): 2U+1 nodes,
    even node 2i is a blank, odd node 2i+1 is target[i]. Every node has a
    self-loop with its label and an arc to the next node; a label node has a skip
    arc to the next label node when the two labels differ. Start nodes {0, 1},
    accept nodes {2U-1, 2U}. All weights 0."""
    target = np.asarray(target, dtype=np.int64)
    U = int(target.size)
    S = 2 * U + 1
    nodes = np.arange(S, dtype=np.int64)
    node_label = np.full(S, blank, dtype=np.int64)
    node_label[1::2] = target
    loop_src = nodes
    next_src = nodes[:-1]
    odd = np.arange(1, S - 2, 2, dtype=np.int64)  # label nodes with a following label node
    skip_src = odd[node_label[odd] != node_label[odd + 2]]
    src = np.concatenate([loop_src, next_src, skip_src])
    dst = np.concatenate([loop_src, next_src + 1, skip_src + 2])
    label = node_label[dst]
    order = np.lexsort((label, src))
    src, dst, label = src[order], dst[order], label[order]
    start = np.array([0, 1] if U > 0 else [0], dtype=np.int64)
    accept = np.array([S - 2, S - 1] if U > 0 else [0], dtype=np.int64)
    return ArcArrays(
        src=src,
        dst=dst,
        ilabel=label,
        olabel=label.copy(),
        weight=np.zeros(src.size, dtype=np.float32),
        start=start,
        accept=accept,
        num_nodes=S,
        info={"target": target},
    )


# --------------------------------------------------------------------------- converters
def to_graph(arrays: ArcArrays, requires_grad: bool = False, device=None):
    """Our `graphs.Graph` from the arrays (weights float32; a leaf tensor if requires_grad)."""
    import torch

    import graphs

    weight = torch.tensor(arrays.weight, dtype=torch.float32, device=device)
    if requires_grad:
        weight.requires_grad_(True)
    return graphs.Graph.from_arrays(
        torch.as_tensor(arrays.src, device=device),
        torch.as_tensor(arrays.dst, device=device),
        torch.as_tensor(arrays.ilabel, device=device),
        torch.as_tensor(arrays.olabel, device=device),
        weight,
        start=torch.as_tensor(arrays.start, device=device),
        accept=torch.as_tensor(arrays.accept, device=device),
        num_nodes=arrays.num_nodes,
    )


def to_openfst(arrays: ArcArrays, arc_type: str = "log"):
    """The same graph as a pywrapfst VectorFst, compiled from AT&T text.

    State numbers are kept (node i is state i). With several start nodes a new
    start state `num_nodes` is added with epsilon arcs (weight One) to each."""
    import pywrapfst as fst

    lines = [
        f"{s}\t{d}\t{i}\t{o}\t{c!r}"
        for s, d, i, o, c in zip(
            arrays.src.tolist(),
            arrays.dst.tolist(),
            (arrays.ilabel + 1).tolist(),
            (arrays.olabel + 1).tolist(),
            (-arrays.weight.astype(np.float64) + 0.0).tolist(),
        )
    ]
    num_states = arrays.num_nodes
    starts = arrays.start.tolist()
    if len(starts) == 1:
        start = starts[0]
    else:
        start = num_states
        num_states += 1
        lines.extend(f"{start}\t{s}\t0\t0\t0" for s in starts)
    lines.extend(str(a) for a in arrays.accept.tolist())
    compiler = fst.Compiler(arc_type=arc_type, keep_state_numbering=True)
    compiler.write("\n".join(lines) + "\n")
    f = compiler.compile()
    if f.num_states() < num_states:
        f.add_states(num_states - f.num_states())
    if starts:
        f.set_start(start)
    return f


def openfst_size(f) -> tuple[int, int]:
    """(states, arcs) of a pywrapfst FST."""
    return f.num_states(), sum(f.num_arcs(s) for s in f.states())
