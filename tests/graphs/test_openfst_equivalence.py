"""Each operation's output accepts the same weighted relation as OpenFst's, cycles included.

OpenFst's result is converted arc by arc and compared with ours by `rand_equivalent` (random walks over both graphs, every sampled label sequence scored in both).
"""

import pytest
import torch
from hypothesis import given, settings

import graphs

from .oracle import from_openfst, fst, to_openfst
from .strategies import graphs as random_graphs

FAST = settings(max_examples=25, deadline=None)


def openfst_compose(g1, g2):
    return fst.compose(to_openfst(g1).arcsort(sort_type="olabel"), to_openfst(g2))


UNARY = {
    "remove_epsilon": (graphs.remove_epsilon, lambda f: f.rmepsilon(delta=1e-12)),
    "invert": (graphs.invert, lambda f: f.invert()),
    "project_input": (graphs.project_input, lambda f: f.project("input")),
    "project_output": (graphs.project_output, lambda f: f.project("output")),
    "reverse": (graphs.reverse, lambda f: fst.reverse(f)),
    "connect": (graphs.connect, lambda f: f.connect()),
}


def assert_equivalent(ours, theirs):
    generator = torch.Generator().manual_seed(0)
    assert graphs.rand_equivalent(ours, theirs, num_samples=30, atol=1e-6, generator=generator)


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(g=random_graphs())
def test_unary_operations(name, g):
    ours, theirs = UNARY[name]
    f = to_openfst(g)
    result = theirs(f)
    assert_equivalent(ours(g), from_openfst(result if result is not None else f))


@FAST
@given(random_graphs(), random_graphs())
def test_compose(g1, g2):
    assert_equivalent(graphs.compose(g1, g2), from_openfst(openfst_compose(g1, g2)))


@FAST
@given(random_graphs(), random_graphs())
def test_union_and_concat(g1, g2):
    f = to_openfst(g1)
    f.union(to_openfst(g2))
    assert_equivalent(graphs.union([g1, g2]), from_openfst(f))
    f = to_openfst(g1)
    f.concat(to_openfst(g2))
    assert_equivalent(graphs.concat(g1, g2), from_openfst(f))


@FAST
@given(random_graphs())
def test_closure(g):
    if graphs.forward_score(g).item() >= -0.5:  # the closure's sum would diverge or crawl
        return
    f = to_openfst(g)
    f.closure()
    assert_equivalent(graphs.closure(g), from_openfst(f))
