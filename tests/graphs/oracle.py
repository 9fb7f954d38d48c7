"""OpenFst (through pynini's pywrapfst) as an independent oracle for graph tests.

Our conventions map onto OpenFst's as: label x <-> x + 1 (so EPSILON -1 <-> 0),
score w <-> cost -w, several start nodes <-> one new start with epsilon arcs,
accept node <-> final weight One.
"""

from __future__ import annotations

import math

import pytest
import torch

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
    if f.start() >= len(distances):  # OpenFst leaves out trailing states that reach no final state
        return -math.inf
    return weight_value(distances[f.start()])


def to_openfst_acceptor(graph: Graph, semiring: str = "log") -> "fst.VectorFst":
    """Like `to_openfst`, but a single start node is the start state itself, and each
    final-weight arc (an epsilon arc into an accept node without outgoing arcs) becomes
    a final weight of its source, so determinized/minimized graphs map state for state."""
    arc_type = "log" if semiring == "log" else "standard"
    f = fst.VectorFst(arc_type)
    weight_type = f.weight_type()
    starts = graph.start.tolist()
    f.add_states(graph.num_nodes + (len(starts) != 1))
    if len(starts) == 1:
        f.set_start(starts[0])
    else:
        f.set_start(graph.num_nodes)
        for s in starts:
            f.add_arc(graph.num_nodes, fst.Arc(0, 0, fst.Weight.one(weight_type), s))
    accept = set(graph.accept.tolist())
    has_arcs = set(graph.src.tolist())
    finals = {a: 0.0 for a in accept}
    for s, d, i, o, w in graph.arcs():
        if i == o == -1 and d in accept and d not in has_arcs:
            old = finals.get(s, -math.inf)
            top = max(old, w)
            finals[s] = top if semiring != "log" else top + math.log(math.exp(old - top) + math.exp(w - top))
        else:
            f.add_arc(s, fst.Arc(i + 1, o + 1, fst.Weight(weight_type, -w), d))
    for node, w in finals.items():
        f.set_final(node, fst.Weight(weight_type, -w))
    return f


def from_openfst(f: "fst.Fst") -> Graph:
    """An OpenFst result as our float64 graph, arc by arc (fst.print() keeps only 6 digits).
    A final weight other than One becomes an epsilon arc into one extra accept node."""
    g = Graph(dtype=torch.float64)
    if f.start() < 0:
        return g
    states = list(f.states())
    finals = [weight_value(f.final(s)) for s in states]
    for s, final in zip(states, finals):
        g.add_node(start=s == f.start(), accept=final == 0.0)
    final_node = g.add_node(accept=True)
    for s, final in zip(states, finals):
        for arc in f.arcs(s):
            g.add_arc(s, arc.nextstate, arc.ilabel - 1, arc.olabel - 1, weight_value(arc.weight))
        if final not in (0.0, -math.inf):
            g.add_arc(s, final_node, -1, -1, final)
    return g
