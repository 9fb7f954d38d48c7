"""Lexicon preparation for graph compilation: Kaldi-style disambiguation symbols.

Determinizing L o G needs every word's token sequence to be recognizable where it ends. A
pronunciation that is a proper prefix of another one, or shared by several words
(homophones), or empty, would leave the word ambiguous, so it gets an auxiliary symbol #k
appended (Kaldi's utils/add_lex_disambig.pl semantics): homophones get #1, #2, ... in lexicon
order, a prefix gets #1 (or the next free number for its sequence). #0 is left for the
grammar's back-off arcs. After determinization and minimization the #k input labels are
replaced by epsilon (`remove_disambig`).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import graphs


def disambig_symbol(k: int) -> str:
    return f"#{k}"


def add_disambig_symbols(lexicon: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[tuple[str, list[str]]], int]:
    """(word, tokens) entries in order -> the same entries with #k appended where needed, and
    the largest k used (0 when none was needed). Kaldi also reserves #0 for G and
    `largest + 1` symbols in total: #0 .. #largest."""
    counts = Counter(tuple(tokens) for _, tokens in lexicon)
    prefixes = {tuple(tokens[:i]) for _, tokens in lexicon for i in range(len(tokens))}
    last_used: dict[tuple[str, ...], int] = {}
    result, largest = [], 0
    for word, tokens in lexicon:
        key = tuple(tokens)
        if key in prefixes or counts[key] > 1 or not key:
            k = last_used.get(key, 0) + 1
            last_used[key] = k
            largest = max(largest, k)
            result.append((word, [*tokens, disambig_symbol(k)]))
        else:
            result.append((word, list(tokens)))
    return result, largest


def remove_disambig(graph: graphs.Graph, first_disambig: int) -> graphs.Graph:
    """`graph` with every input label >= first_disambig (the #k symbols, numbered after the real
    tokens) replaced by epsilon; weights are shared, so gradients still reach them."""
    ilabel = graph.ilabel.masked_fill(graph.ilabel >= first_disambig, graphs.EPSILON)
    return graphs.Graph.from_arrays(graph.src, graph.dst, ilabel, graph.olabel, weight=graph.weight,
                                    start=graph.start, accept=graph.accept, num_nodes=graph.num_nodes)
