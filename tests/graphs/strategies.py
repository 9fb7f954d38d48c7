"""Hypothesis strategies for small random graphs (epsilons, cycles, several starts/accepts)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from graphs import Graph


@st.composite
def graphs(
    draw,
    max_nodes: int = 5,
    max_arcs: int = 10,
    num_labels: int = 3,
    epsilons: bool = True,
    acyclic: bool = False,
    acceptor: bool = False,
    convergent: bool = True,
) -> Graph:
    """A random float64 graph. With `convergent`, weights are scaled so every node's outgoing
    probabilities sum below 1: the log-semiring sum over the paths of any cycle converges."""
    n = draw(st.integers(1, max_nodes))
    low = -1 if epsilons else 0
    arc = st.tuples(
        st.integers(0, n - 1), st.integers(0, n - 1), st.integers(low, num_labels - 1),
        st.integers(low, num_labels - 1), st.floats(-3.0, 1.0, allow_nan=False),
    )
    arcs = draw(st.lists(arc, max_size=max_arcs))
    if acyclic:
        arcs = [(min(s, d), max(s, d), i, o, w) for s, d, i, o, w in arcs if s != d]
    if acceptor:
        arcs = [(s, d, i, i, w) for s, d, i, _, w in arcs]
    start = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True))
    accept = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=2, unique=True))
    src = np.array([a[0] for a in arcs], dtype=np.int64)
    weight = np.array([a[4] for a in arcs], dtype=np.float64)
    if convergent and arcs:
        out_degree = np.bincount(src, minlength=n)
        weight = np.minimum(weight, -0.1) - np.log1p(out_degree[src])
    return Graph.from_arrays(
        src, [a[1] for a in arcs], [a[2] for a in arcs], [a[3] for a in arcs],
        torch.tensor(weight, dtype=torch.float64), start, accept, n,
    )
