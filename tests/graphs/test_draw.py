"""graphs.draw.to_dot: Graphviz text with start/accept styling and arc labels."""

import os
import re

from graphs import EPSILON, Graph
from graphs.draw import to_dot
from graphs.io import SymbolTable


def node_line(dot: str, node: int) -> str:
    return next(line for line in dot.splitlines() if re.match(rf"\s*{node} \[", line))


def arc_labels(dot: str) -> list[str]:
    return re.findall(r'-> \d+ \[label="((?:[^"\\]|\\.)*)"\]', dot)


def test_nodes_and_arc_labels():
    g = Graph.from_arrays([0, 1, 1], [1, 2, 2], [0, EPSILON, 1], [2, EPSILON, 0], [0.5, 0.0, -2.25], [0], [2], 4)
    dot = to_dot(g)
    assert dot.startswith("digraph G {") and "rankdir=LR;" in dot and dot.rstrip().endswith("}")
    assert "bold" in node_line(dot, 0) and "filled" in node_line(dot, 0)
    assert "doublecircle" in node_line(dot, 2)
    assert "doublecircle" not in node_line(dot, 1) and "bold" not in node_line(dot, 3)  # isolated node listed
    assert arc_labels(dot) == ["0:2/0.5", "ε:ε", "1:0/-2.25"]


def test_acceptor_labels_and_symbols():
    g = Graph.from_arrays([0, 0], [1, 1], [0, EPSILON], None, [0.0, 1.0], [0, 1], [1], 2)
    assert arc_labels(to_dot(g)) == ["0", "ε/1"]
    assert "doublecircle" in node_line(to_dot(g), 1) and "bold" in node_line(to_dot(g), 1)
    assert arc_labels(to_dot(g, isymbols=SymbolTable(["<blk>"]))) == ["<blk>", "ε/1"]


def test_transducer_symbols_are_escaped(tmp_path):
    g = Graph.from_arrays([0], [1], [1], [0], None, [0], [1], 2)
    isymbols, osymbols = SymbolTable(["a", 'say"hi"']), SymbolTable(["x"])
    path = tmp_path / "g.dot"
    dot = to_dot(g, isymbols, osymbols, path=path)
    assert arc_labels(dot) == ['say\\"hi\\":x']
    assert path.read_text(encoding="utf-8") == dot and os.listdir(tmp_path) == ["g.dot"]
