"""graphs: a differentiable weighted finite-state transducer library on PyTorch.

Conventions (gtn-compatible): `EPSILON == -1`; labels 0..V-1 index emission
columns; weights are log-domain scores (higher is better); any number of start
and accept nodes, no final weights. Every function takes a graph or a list of
graphs (processed together in one vectorized pass) and keeps gradients flowing
to the input weights.
"""

from .builders import ctc_graph, ctc_topology, linear_graph, sequence_graph
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

__all__ = [
    "EPSILON", "DenseAlignment", "Graph", "SymbolTable", "align_dense", "arc_posteriors", "arc_sort", "closure", "compose", "concat",
    "connect", "ctc_graph", "ctc_topology", "determinize", "equal", "forward_score", "intersect", "intersect_dense", "invert", "isomorphic", "linear_graph", "load",
    "minimize", "nbest", "project_input", "project_output", "prune", "rand_equivalent", "read_openfst",
    "remove_epsilon", "reverse", "sample", "save", "sequence_graph", "to_dot", "topsort", "union", "viterbi_path",
    "viterbi_score", "write_openfst",
]
