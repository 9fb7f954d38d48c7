"""Draw the decoding graphs of a two-word task with `graphs.to_dot`: H (CTC topology), L (the
lexicon with a disambiguation symbol), G (a bigram LM) and the compiled HLG.

python -m docs.figures        # writes docs/figures/*.dot, and *.svg where Graphviz's `dot` is installed
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import graphs
from asr.lang import add_disambig_symbols, build_hlg
from asr.lm import estimate_kneser_ney

FIGURES = Path(__file__).resolve().parent / "figures"
TOKENS = ["<blk>", "a", "b"]
LEXICON = {"AB": [["a", "b"]], "A": [["a"]]}  # "a" is a prefix of "a b": A gets #1


def figures() -> dict[str, tuple[graphs.Graph, graphs.SymbolTable, graphs.SymbolTable | None]]:
    tokens = graphs.SymbolTable(TOKENS)
    words = graphs.SymbolTable(list(LEXICON))
    lm = estimate_kneser_ney([["AB", "A"], ["A"], ["AB", "AB", "A"]], order=2)
    marked, largest = add_disambig_symbols([(w, p) for w, prons in LEXICON.items() for p in prons])
    with_disambig = graphs.SymbolTable(TOKENS + [f"#{k}" for k in range(largest + 1)])
    lexicon = graphs.lexicon_graph([(list(LEXICON).index(w), [with_disambig.label(t) for t in pron])
                                    for w, pron in marked])
    return {
        "H": (graphs.ctc_topology(len(TOKENS)), tokens, tokens),
        "L": (lexicon, with_disambig, words),
        "G": (graphs.grammar_from_arpa(lm, list(LEXICON)), words, None),
        "HLG": (build_hlg(TOKENS, LEXICON, lm).graph, tokens, words),
    }


def main() -> None:
    FIGURES.mkdir(exist_ok=True)
    dot = shutil.which("dot")
    for name, (graph, isymbols, osymbols) in figures().items():
        path = FIGURES / f"{name}.dot"
        graphs.to_dot(graph, isymbols, osymbols, path=path)
        if dot:
            subprocess.run([dot, "-Tsvg", str(path), "-o", str(path.with_suffix(".svg"))], check=True)
        print(f"{path} ({graph.num_nodes} nodes, {graph.num_arcs} arcs)")


if __name__ == "__main__":
    main()
