"""Brute-force truths for small graphs: every accepting path enumerated explicitly."""

from __future__ import annotations

import collections
import math

from graphs import EPSILON, Graph


def accepting_paths(graph: Graph, max_length: int = 12) -> list[tuple[float, tuple[int, ...]]]:
    """(weight, arc ids) of every accepting path with at most max_length arcs."""
    leaving = collections.defaultdict(list)
    for arc, (src, dst, _, _, weight) in enumerate(graph.arcs()):
        leaving[src].append((arc, dst, weight))
    accept = set(graph.accept.tolist())
    found = []

    def walk(node, arcs, score):
        if node in accept:
            found.append((score, tuple(arcs)))
        if len(arcs) < max_length:
            for arc, dst, weight in leaving[node]:
                walk(dst, arcs + [arc], score + weight)

    for start in graph.start.tolist():
        walk(start, [], 0.0)
    return found


def logsumexp(values) -> float:
    values = list(values)
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def string_weights(graph: Graph, semiring: str = "log", max_length: int = 12) -> dict:
    """(input labels, output labels) without epsilons -> combined weight of all paths."""
    arcs = graph.arcs()
    grouped = collections.defaultdict(list)
    for score, path in accepting_paths(graph, max_length):
        inputs = tuple(arcs[a][2] for a in path if arcs[a][2] != EPSILON)
        outputs = tuple(arcs[a][3] for a in path if arcs[a][3] != EPSILON)
        grouped[inputs, outputs].append(score)
    combine = logsumexp if semiring == "log" else max
    return {key: combine(scores) for key, scores in grouped.items()}


def total(graph: Graph, semiring: str = "log") -> float:
    combine = logsumexp if semiring == "log" else (lambda v: max(v, default=-math.inf))
    return combine([score for score, _ in accepting_paths(graph, max_length=64)])


def compose_strings(first: dict, second: dict, semiring: str = "log") -> dict:
    """The string relation of a composition, from the string relations of its operands."""
    joined = collections.defaultdict(list)
    for (x, y), w1 in first.items():
        for (y2, z), w2 in second.items():
            if y == y2:
                joined[x, z].append(w1 + w2)
    combine = logsumexp if semiring == "log" else max
    return {key: combine(scores) for key, scores in joined.items()}


def assert_same_strings(got: dict, want: dict, tol: float = 1e-6) -> None:
    finite_got = {k: v for k, v in got.items() if v > -math.inf}
    finite_want = {k: v for k, v in want.items() if v > -math.inf}
    assert finite_got.keys() == finite_want.keys(), (sorted(finite_got), sorted(finite_want))
    for key, value in finite_want.items():
        assert math.isclose(finite_got[key], value, rel_tol=tol, abs_tol=tol), (key, finite_got[key], value)
