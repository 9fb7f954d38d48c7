"""Draw the decoding graphs of a two-word task with `graphs.to_dot`: H (CTC topology), L (the
lexicon with a disambiguation symbol), G (a bigram LM) and the compiled HLG; and the graphs
of the training losses (docs/losses.md) for the target "a b a".

python -m docs.figures        # writes docs/figures/*.dot, and *.svg where Graphviz's `dot` is installed
"""

from __future__ import annotations

import runpy
import shutil
import subprocess
from pathlib import Path

import torch

import graphs
from asr.decoding import ASGTopology
from asr.lang import add_disambig_symbols, build_hlg
from asr.lm import estimate_kneser_ney
from asr.losses import MMILoss
from graphs.wordpiece import segmentation_graph

FIGURES = Path(__file__).resolve().parent / "figures"
TOKENS = ["<blk>", "a", "b"]
PIECES = ["\u2581", "a", "b", "\u2581a", "\u2581ab"]  # sentencepiece-style pieces of "ab a"
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


def loss_figures() -> dict[str, tuple[graphs.Graph, graphs.SymbolTable, graphs.SymbolTable | None]]:
    """The target "a b a" as each loss sees it, the MMI denominator, the H of an ASG model
    (label 0 is the repetition label) and the segmentations of "ab a" into word pieces."""
    tokens = graphs.SymbolTable(TOKENS)
    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "custom_graph_loss.py"))
    return {
        "loss_ctc": (graphs.ctc_graph([[1, 2, 1]])[0], tokens, None),
        "loss_min_duration_ctc": (example["min_duration_ctc_graph"]([1, 2, 1]), tokens, None),
        "loss_mmi_denominator": (MMILoss(len(TOKENS)).denominator(torch.float32), tokens, None),
        "loss_asg": (graphs.asg_alignment_graph([[0, 1, 0]])[0], graphs.SymbolTable(["a", "b"]), None),  # no blank
        "loss_asg_h": (graphs.connect(ASGTopology().graph(len(TOKENS))), graphs.SymbolTable(["<rep>", "a", "b"]), tokens),
        "loss_wordpiece": (segmentation_graph(["ab a"], PIECES)[0], graphs.SymbolTable(PIECES), None),
    }


def main() -> None:
    FIGURES.mkdir(exist_ok=True)
    dot = shutil.which("dot")
    for name, (graph, isymbols, osymbols) in {**figures(), **loss_figures()}.items():
        path = FIGURES / f"{name}.dot"
        graphs.to_dot(graph, isymbols, osymbols, path=path)
        if dot:
            subprocess.run([dot, "-Tsvg", str(path), "-o", str(path.with_suffix(".svg"))], check=True)
        print(f"{path} ({graph.num_nodes} nodes, {graph.num_arcs} arcs)")


if __name__ == "__main__":
    main()
