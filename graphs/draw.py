"""Graphviz DOT text for looking at a graph (`dot -Tpdf graph.dot -o graph.pdf`)."""

from __future__ import annotations

import numpy as np

from .graph import EPSILON, Graph
from .io import SymbolTable, as_symbol_table, format_each, write_atomic


def _label_text(labels: np.ndarray, table: SymbolTable | None) -> np.ndarray:
    """Each label as its symbol (or number), epsilon as ε, escaped for a quoted DOT string."""
    text = np.full(labels.shape, "ε", dtype=object)
    real = labels != EPSILON
    names = labels[real].astype(str) if table is None else table.symbols(labels[real])
    text[real] = np.char.replace(np.char.replace(names, "\\", "\\\\"), '"', '\\"')
    return text


def to_dot(graph: Graph, isymbols=None, osymbols=None, path=None) -> str:
    """DOT text, left to right: start nodes bold and filled, accept nodes double circles,
    arcs labelled `i:o/w` (acceptors `i/w`; `/w` left out when w is 0; epsilon is ε;
    symbols from the tables, which may be SymbolTables or paths, when given).
    Written atomically to `path` if given."""
    isymbols, osymbols = as_symbol_table(isymbols), as_symbol_table(osymbols)
    s = graph.numpy()
    weight = graph.weight.detach().cpu().double().numpy()

    shape = np.full(s.num_nodes, "circle", dtype=object)
    shape[s.accept] = "doublecircle"
    style = np.full(s.num_nodes, "", dtype=object)
    style[s.start] = ', style="bold,filled", fillcolor="lightgrey"'
    nodes = format_each(np.arange(s.num_nodes)) + " [shape=" + shape + style + "];"

    label = _label_text(s.ilabel, isymbols)
    if not graph.is_acceptor():
        label = label + ":" + _label_text(s.olabel, osymbols)
    suffix = np.full(weight.shape, "", dtype=object)
    suffix[weight != 0] = "/" + format_each(weight[weight != 0], "{:.6g}".format)
    arcs = format_each(s.src) + " -> " + format_each(s.dst) + ' [label="' + label + suffix + '"];'

    lines = ["digraph G {", "  rankdir=LR;", *("  " + line for line in nodes.tolist() + arcs.tolist()), "}"]
    text = "\n".join(lines) + "\n"
    if path is not None:
        write_atomic(path, text)
    return text
