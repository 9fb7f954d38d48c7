"""graphs: a differentiable weighted finite-state transducer library on PyTorch.

Conventions (gtn-compatible): `EPSILON == -1`; labels 0..V-1 index emission
columns; weights are log-domain scores (higher is better); any number of start
and accept nodes, no final weights. Operations take a graph or a list of graphs
(processed together in one vectorized pass). Most keep gradients flowing to the
input weights; `determinize`, `minimize`, `arc_posteriors` and `align_dense`
return detached results. docs/operations.md lists every operation's semiring,
gradients, list behaviour and preconditions.
"""

from ._semiring import segment_argmax, segment_logsumexp, segment_max
from .arpa import NgramLM, grammar_from_arpa, read_arpa
from .asg import asg_alignment_graph, asg_transition_graph
from .builders import (
    alternatives_graph,
    ctc_graph,
    ctc_topology,
    lexicon_graph,
    linear_graph,
    ngram_transition_graph,
    sequence_graph,
)
from .compare import equal, isomorphic, rand_equivalent
from .compose import compose, intersect
from .dense import DenseAlignment, align_dense, intersect_dense
from .determinize import determinize, minimize
from .draw import to_dot
from .epsilon import remove_epsilon
from .graph import EPSILON, Graph
from .io import SymbolTable, load, read_openfst, save, write_openfst
from .paths import nbest, prune, sample
from .rational import closure, concat, invert, project_input, project_output, union
from .scores import arc_posteriors, forward_score, viterbi_path, viterbi_score
from .structure import arc_sort, connect, reverse, topsort
from .wordpiece import ctc_alignments, mark_words, segmentation_graph

__all__ = [
    "NgramLM", "grammar_from_arpa", "read_arpa",
    "align_dense", "alternatives_graph", "arc_posteriors", "arc_sort", "asg_alignment_graph", "asg_transition_graph",
    "closure", "compose", "concat", "connect", "ctc_alignments", "ctc_graph", "ctc_topology",
    "DenseAlignment", "determinize", "EPSILON", "equal", "forward_score", "Graph", "intersect",
    "intersect_dense", "invert", "isomorphic", "lexicon_graph", "linear_graph", "load", "mark_words", "minimize",
    "nbest", "ngram_transition_graph", "project_input", "project_output", "prune",
    "rand_equivalent", "read_openfst", "remove_epsilon", "reverse", "sample", "save",
    "segment_argmax", "segment_logsumexp", "segment_max", "segmentation_graph", "sequence_graph", "SymbolTable", "to_dot",
    "topsort", "union",
    "viterbi_path", "viterbi_score", "write_openfst",
]
