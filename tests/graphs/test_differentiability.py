"""What docs/operations.md says about gradients, operation by operation.

Where the table says an output is differentiable in an input, gradcheck passes from that input
to the output (the analytical gradient is the numerical one) and the gradient reaches every
input; where it says the output is detached or constant, the output does not require grad
although the input does. Inputs are small float64 graphs whose path scores have no ties, so a
gradcheck step (1e-6) changes no best path, pruning or determinization decision.
"""

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import graphs as G
from graphs import EPSILON, Graph
from graphs.arpa import NgramLM

D = torch.float64


def acceptor(arcs, start, accept, num_nodes=None) -> Graph:
    src, dst, label, weight = zip(*arcs)
    return Graph.from_arrays(list(src), list(dst), list(label), weight=list(weight), start=start, accept=accept,
                             num_nodes=num_nodes, dtype=D)


def transducer(arcs, start, accept) -> Graph:
    src, dst, ilabel, olabel, weight = zip(*arcs)
    return Graph.from_arrays(list(src), list(dst), list(ilabel), list(olabel), list(weight), start, accept, dtype=D)


# Acyclic acceptor over labels 0..2 with paths of 2, 3 and 4 arcs and two accept nodes.
ACC = acceptor([(0, 1, 0, -0.3), (0, 2, 1, -1.1), (1, 2, 2, -0.7), (1, 3, 1, -0.2), (2, 3, 0, -1.6),
                (2, 4, 2, -0.45), (3, 4, 1, -0.9)], start=[0], accept=[3, 4])
# A cyclic acceptor sharing strings with ACC.
LOOPS = acceptor([(0, 0, 0, -0.5), (0, 1, 1, -0.3), (1, 1, 2, -0.8), (1, 1, 0, -0.6), (0, 1, 2, -0.25),
                  (1, 2, 1, -1.4)], start=[0], accept=[1, 2])
# Summing over its cycles converges (every node's outgoing mass is below 1).
CYCLIC = acceptor([(0, 1, 0, -0.5), (1, 1, 1, -1.2), (1, 0, 2, -1.5), (1, 2, 0, -0.3)], start=[0], accept=[2])
# Transducers with epsilon inputs and outputs whose composition is not empty.
TRANS = transducer([(0, 1, 0, 1, -0.2), (0, 2, 1, EPSILON, -0.9), (1, 3, 2, 0, -0.4), (2, 3, 0, 2, -1.3),
                    (1, 2, EPSILON, 1, -0.65)], start=[0], accept=[3])
TRANS2 = transducer([(0, 1, 1, 0, -0.15), (0, 1, EPSILON, 2, -0.8), (1, 2, 0, 1, -0.5), (1, 2, 2, EPSILON, -1.05)],
                    start=[0], accept=[2])
# Epsilon arcs (ilabel == olabel == EPSILON), with a convergent epsilon cycle 1 -> 2 -> 1.
EPS = acceptor([(0, 1, EPSILON, -0.4), (1, 2, EPSILON, -0.9), (2, 1, EPSILON, -1.3), (0, 2, 0, -0.2),
                (1, 3, 1, -0.6), (2, 3, 2, -0.35), (0, 3, EPSILON, -2.0)], start=[0], accept=[3])
# Node 5 is unreachable, node 6 a dead end: connect drops both.
DEAD = acceptor([(0, 1, 0, -0.3), (1, 2, 1, -0.8), (5, 2, 2, -0.1), (0, 6, 1, -0.6), (0, 2, 2, -1.7)],
                start=[0], accept=[2], num_nodes=7)
# Nodes out of topological order, for topsort.
SHUFFLED = acceptor([(2, 0, 0, -0.3), (0, 1, 1, -0.8), (2, 1, 2, -1.2), (1, 3, 0, -0.5)], start=[2], accept=[3])
# Deterministic (one start, one arc per node and label), as minimize requires.
DETERMINISTIC = acceptor([(0, 1, 0, -0.3), (0, 2, 1, -1.1), (1, 3, 1, -0.2), (2, 3, 1, -0.2), (3, 3, 2, -1.4)],
                         start=[0], accept=[3])
EMISSIONS = torch.randn(2, 4, 3, dtype=D, generator=torch.Generator().manual_seed(0))
LENGTHS = [4, 3]


def reweighted(template: Graph, weight: torch.Tensor) -> Graph:
    """The template's structure with `weight` (which may require grad) as its arc weights."""
    return Graph.from_arrays(template.src, template.dst, template.ilabel, template.olabel, weight,
                             template.start, template.accept, template.num_nodes)


def on(*templates):
    """A case whose inputs are the templates' weights: `op` gets the graphs rebuilt around them."""

    def case(op):
        return tuple(t.weight for t in templates), lambda *ws: op(*map(reweighted, templates, ws))

    return case


def with_weight(graph: Graph, weight: torch.Tensor) -> Graph:
    graph.weight = weight
    return graph


def flat(output) -> torch.Tensor:
    """All weights (or scores) of an operation's output in one tensor: a Graph's arc weights,
    a tensor itself, a list's items concatenated."""
    if isinstance(output, Graph):
        return output.weight
    if isinstance(output, torch.Tensor):
        return output.reshape(-1)
    if isinstance(output, G.DenseAlignment):
        return output.score
    return torch.cat([flat(item) for item in output])


SEGMENTS = torch.tensor([0, 2, 0, 1, 2, 2, 0])
TRANSITIONS = (torch.arange(12, dtype=D).reshape(4, 3) * 0.37 % 1.0) - 1.0  # [V + 1, V], V = 3, no ties

DIFFERENTIABLE = {
    "compose": on(TRANS, TRANS2)(G.compose),
    "compose, a list with a graph": on(TRANS, ACC, TRANS2)(lambda a, b, c: G.compose([a, G.project_input(b)], c)),
    "intersect": on(ACC, LOOPS)(G.intersect),
    "union": on(ACC, TRANS)(lambda a, b: G.union([a, b])),
    "concat": on(ACC, TRANS)(G.concat),
    "closure": on(ACC)(G.closure),
    "closure, a list": on(ACC, TRANS)(lambda a, b: G.closure([a, b])),
    "project_input": on(TRANS)(G.project_input),
    "project_output": on(TRANS)(G.project_output),
    "invert": on(TRANS)(G.invert),
    "remove_epsilon log": on(EPS)(G.remove_epsilon),
    "remove_epsilon tropical": on(EPS)(lambda g: G.remove_epsilon(g, "tropical")),
    "connect": on(DEAD)(G.connect),
    "topsort": on(SHUFFLED)(G.topsort),
    "reverse": on(TRANS)(G.reverse),
    "arc_sort ilabel": on(TRANS)(G.arc_sort),
    "arc_sort olabel": on(TRANS)(lambda g: G.arc_sort(g, "olabel")),
    "prune": on(ACC)(lambda g: G.prune(g, 1.0)),
    "nbest": on(ACC)(lambda g: G.nbest(g, 3)),
    "nbest, a list": on(ACC, LOOPS)(lambda a, b: G.nbest([a, G.intersect(a, b)], 2)),
    "sample": on(CYCLIC)(lambda g: G.sample(g, 4, generator=torch.Generator().manual_seed(0))),
    "viterbi_path": on(ACC)(G.viterbi_path),
    "forward_score": on(ACC)(G.forward_score),
    "forward_score, cyclic": on(CYCLIC)(G.forward_score),
    "forward_score, a list": on(ACC, CYCLIC)(lambda a, b: G.forward_score([a, b])),
    "viterbi_score": on(ACC)(G.viterbi_score),
    "viterbi_score, cyclic": on(CYCLIC)(G.viterbi_score),
    "intersect_dense log": ((EMISSIONS, ACC.weight),
                            lambda e, w: G.intersect_dense(e, LENGTHS, reweighted(ACC, w))),
    "intersect_dense tropical": ((EMISSIONS, ACC.weight),
                                 lambda e, w: G.intersect_dense(e, LENGTHS, reweighted(ACC, w), "tropical")),
    "intersect_dense, epsilon arcs": ((EMISSIONS[:, :2], EPS.weight),
                                      lambda e, w: G.intersect_dense(e, [2, 1], reweighted(EPS, w))),
    "ctc_alignments": ((ACC.weight,), lambda w: G.ctc_alignments(
        Graph.from_arrays(ACC.src, ACC.dst, ACC.ilabel + 1, weight=w, start=ACC.start, accept=ACC.accept))),
    "linear_graph": ((EMISSIONS[0],), lambda w: G.linear_graph(4, 3, w)),
    "ngram_transition_graph": ((EMISSIONS[0, :3, :2].reshape(-1),), lambda w: G.ngram_transition_graph(2, 2, w)),
    "asg_alignment_graph": ((TRANSITIONS,), lambda t: G.asg_alignment_graph([[0, 1, 2], [2, 0]], transitions=t)),
    "asg_transition_graph": ((TRANSITIONS,), lambda t: G.asg_transition_graph(3, t)),
    "segment_logsumexp": ((EMISSIONS[0, 0, :].repeat(3)[:7],), lambda v: G.segment_logsumexp(v, SEGMENTS, 4)[:3]),
    "segment_max": ((EMISSIONS[1].reshape(-1)[:7],), lambda v: G.segment_max(v, SEGMENTS, 3)),
    "Graph.from_arrays": on(TRANS)(lambda g: g),
    "Graph.from_tensors": ((ACC.weight,), lambda w: Graph.from_tensors(
        ACC.num_nodes, ACC.src, ACC.dst, ACC.ilabel, ACC.olabel, w, ACC.start, ACC.accept)),
    "graph.weight = w": ((ACC.weight,), lambda w: with_weight(ACC.detach(), w)),
    "Graph.clone": on(TRANS)(Graph.clone),
    "Graph.to": on(TRANS)(lambda g: g.to("cpu", torch.float64)),
}


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradients_reach_every_input_and_match_numerical_ones(name):
    values, op = DIFFERENTIABLE[name]
    inputs = tuple(v.detach().clone().requires_grad_() for v in values)

    def function(*weights):
        return flat(op(*weights))

    output = function(*inputs)
    assert output.requires_grad and output.numel() > 0
    assert torch.isfinite(output).any()
    finite = torch.isfinite(output)
    coefficients = torch.linspace(0.5, 1.5, output.numel(), dtype=D)
    grads = torch.autograd.grad((output[finite] * coefficients[finite]).sum(), inputs, allow_unused=True)
    for i, grad in enumerate(grads):
        assert grad is not None and bool((grad != 0).any()), f"no gradient reaches input {i}"
    assert gradcheck(lambda *w: function(*w)[finite], inputs)


def requiring_grad(template: Graph) -> Graph:
    return reweighted(template, template.weight.detach().clone().requires_grad_())


def saved_and_loaded(graph: Graph, path) -> Graph:
    G.save(graph, path)
    return G.load(path)


DETACHED = {
    "determinize log": lambda path: G.determinize(requiring_grad(ACC)),
    "determinize tropical": lambda path: G.determinize(requiring_grad(LOOPS), "tropical"),
    "minimize log": lambda path: G.minimize(requiring_grad(DETERMINISTIC)),
    "minimize tropical": lambda path: G.minimize(requiring_grad(DETERMINISTIC), "tropical"),
    "arc_posteriors": lambda path: G.arc_posteriors(requiring_grad(ACC)),
    "arc_posteriors, a list": lambda path: G.arc_posteriors([requiring_grad(ACC), requiring_grad(CYCLIC)]),
    "align_dense": lambda path: G.align_dense(EMISSIONS.clone().requires_grad_(), LENGTHS, requiring_grad(ACC)),
    "Graph.detach": lambda path: requiring_grad(ACC).detach(),
    "save then load": lambda path: saved_and_loaded(requiring_grad(ACC), path / "g.pt"),
}


@pytest.mark.parametrize("name", DETACHED)
def test_detached_outputs_do_not_require_grad(name, tmp_path):
    output = flat(DETACHED[name](tmp_path))
    assert output.numel() > 0 and not output.requires_grad


CONSTANT = {
    "sequence_graph": lambda: G.sequence_graph([[0, 1], [2]]),
    "ctc_graph": lambda: G.ctc_graph([[1, 2], [2]]),
    "ctc_topology": lambda: G.ctc_topology(3),
    "lexicon_graph": lambda: G.lexicon_graph([(0, [1, 2]), (1, [2])]),
    "alternatives_graph": lambda: G.alternatives_graph([[[0], [1, 2]], [[2]]]),
    "segmentation_graph": lambda: G.segmentation_graph(["ab"], ["\u2581a", "b", "\u2581ab"]),
    "grammar_from_arpa": lambda: G.grammar_from_arpa(NgramLM(1, {("<s>",): (-99.0, None), ("</s>",): (-0.5, None),
                                                                 ("a",): (-0.3, None)})),
    "read_openfst": lambda: G.read_openfst("0 1 1 1 0.5\n1\n"),
    "linear_graph, no weight": lambda: G.linear_graph(2, 2),
    "ngram_transition_graph, no weight": lambda: G.ngram_transition_graph(2, 2),
    "asg_alignment_graph, no transitions": lambda: G.asg_alignment_graph([[0, 1]]),
}


@pytest.mark.parametrize("name", CONSTANT)
def test_builders_without_weight_inputs_make_constant_weights(name):
    output = flat(CONSTANT[name]())
    assert output.numel() > 0 and not output.requires_grad
    assert np.isfinite(output.numpy()).all()
