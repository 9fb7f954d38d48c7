"""OpenFst (through pynini's pywrapfst) as an independent oracle for graph tests.

Our conventions map onto OpenFst's as: label x <-> x + 1 (so EPSILON -1 <-> 0),
score w <-> cost -w, several start nodes <-> one new start with epsilon arcs,
accept node <-> final weight One.
"""

from __future__ import annotations

import math

import pytest

fst = pytest.importorskip("pywrapfst")

from graphs import Graph  # noqa: E402


def to_openfst(graph: Graph, semiring: str = "log") -> "fst.VectorFst":
    """Our graph as an OpenFst VectorFst (log64 arcs for "log", float32 tropical arcs otherwise)."""
    arc_type = "log64" if semiring == "log" else "standard"  # tropical64 is not registered in pynini
    f = fst.VectorFst(arc_type)
    weight_type = f.weight_type()
    f.add_states(graph.num_nodes + 1)
    super_start = graph.num_nodes
    f.set_start(super_start)
    for s in graph.start.tolist():
        f.add_arc(super_start, fst.Arc(0, 0, fst.Weight.one(weight_type), s))
    for s, d, i, o, w in graph.arcs():
        f.add_arc(s, fst.Arc(i + 1, o + 1, fst.Weight(weight_type, -w), d))
    for a in graph.accept.tolist():
        f.set_final(a, fst.Weight.one(weight_type))
    return f


def weight_value(weight) -> float:
    """An OpenFst weight as our score (negated cost); Zero becomes -inf."""
    text = weight.to_string()
    if text in ("Infinity", "inf"):
        return -math.inf
    return -float(text)


def total_score(graph: Graph, semiring: str = "log") -> float:
    """OpenFst's shortest distance from the start to the final states, as a score."""
    f = to_openfst(graph, semiring)
    distances = fst.shortestdistance(f, reverse=True, delta=1e-9)
    if not distances:
        return -math.inf
    return weight_value(distances[f.start()])
