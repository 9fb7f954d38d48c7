"""graphs: a differentiable weighted finite-state transducer library on PyTorch."""

from .compose import compose, intersect
from .epsilon import remove_epsilon
from .graph import EPSILON, Graph
from .rational import closure, concat, invert, project_input, project_output, union
from .scores import arc_posteriors, forward_score, viterbi_path, viterbi_score
from .structure import arc_sort, connect, reverse, topsort

__all__ = [
    "EPSILON", "Graph", "arc_posteriors", "arc_sort", "closure", "compose", "concat", "connect",
    "forward_score", "intersect", "invert", "project_input", "project_output", "remove_epsilon", "reverse", "topsort",
    "union", "viterbi_path", "viterbi_score",
]
