"""Contextual biasing: a context graph of phrases (hotwords) that a search walks beside its
decoding graph, adding a bonus for every token that continues a phrase and taking it back
when the match breaks off or the utterance ends unfinished (the Aho-Corasick automaton of
icefall's and sherpa-onnx's ContextGraph, written on arrays so whole beams step at once).

States are node numbers of the phrases' trie (0: the root). A node's `node_score` is the
bonus collected on the way from the root; on a token that leaves the trie the search goes to
the longest suffix of the matched tokens that is still a phrase prefix (the `fail` node),
and the step's score is the difference of the two nodes' `node_score`s, so only the bonus of
completed phrases is kept. `output_score` is the bonus of every phrase that ends at a node
(itself and the shorter phrases that are its suffixes).

In `strict` mode every phrase occurrence earns its bonus, overlapping ones included (a
search for "SHE" in "SHELL" and "HE" both pay); otherwise (what hotword decoding uses) a
completed phrase is kept and the walk starts again from the root, so each stretch of
tokens pays for one phrase, the longest that ends first.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

ROOT = 0


@dataclasses.dataclass
class ContextGraph:
    """The automaton of a phrase list (`build`); arrays indexed by node. `keys` are the
    sorted `parent * num_tokens + token` of the trie's arcs and `children` their target
    nodes, for vectorized lookups."""

    num_tokens: int
    token_score: np.ndarray
    node_score: np.ndarray
    output_score: np.ndarray
    is_end: np.ndarray
    fail: np.ndarray
    output: np.ndarray  # the nearest end node on the fail chain (not the node itself), or -1
    depth: np.ndarray
    keys: np.ndarray
    children: np.ndarray

    @classmethod
    def build(cls, phrases: Sequence[Sequence[int]], num_tokens: int, scores: Sequence[float] | None = None,
              default_score: float = 1.0) -> ContextGraph:
        """The graph of `phrases` (token id sequences below `num_tokens`), each token of phrase i
        worth `scores[i]` (0 or None: `default_score`). Tokens shared by several phrases' prefixes
        are worth the largest of their scores, whatever the order of the phrases."""
        if scores is not None and len(scores) != len(phrases):
            raise ValueError(f"{len(scores)} scores for {len(phrases)} phrases")
        children: dict[tuple[int, int], int] = {}
        token_score, is_end, parent, token_of, depth = [0.0], [False], [-1], [-1], [0]
        for i, phrase in enumerate(phrases):
            if not len(phrase):
                raise ValueError(f"phrase {i} is empty")
            score = (scores[i] if scores is not None else 0.0) or default_score
            node = ROOT
            for position, token in enumerate(phrase):
                token = int(token)
                if not 0 <= token < num_tokens:
                    raise ValueError(f"phrase {i}: token {token} is not in 0..{num_tokens - 1}")
                child = children.get((node, token))
                if child is None:
                    child = children[(node, token)] = len(token_score)
                    token_score.append(score)
                    is_end.append(False)
                    parent.append(node)
                    token_of.append(token)
                    depth.append(position + 1)
                else:
                    token_score[child] = max(token_score[child], score)
                node = child
            is_end[node] = True
        return cls._arrays(num_tokens, np.array(token_score), np.array(is_end), np.array(parent), np.array(token_of),
                           np.array(depth), children)

    @classmethod
    def _arrays(cls, num_tokens, token_score, is_end, parent, token_of, depth, children) -> ContextGraph:
        """Node scores, fail and output links level by level (each level in one vector step)."""
        pairs = np.array(sorted(children), dtype=np.int64).reshape(-1, 2)
        keys = pairs[:, 0] * num_tokens + pairs[:, 1]
        targets = np.array([children[tuple(p)] for p in pairs.tolist()], dtype=np.int64)
        size = len(token_score)
        node_score, output_score = np.zeros(size), np.zeros(size)
        fail, output = np.zeros(size, dtype=np.int64), np.full(size, -1, dtype=np.int64)
        graph = cls(num_tokens, token_score, node_score, output_score, is_end, fail, output, depth, keys, targets)
        for level in range(1, int(depth.max(initial=0)) + 1):
            nodes = np.flatnonzero(depth == level)
            node_score[nodes] = node_score[parent[nodes]] + token_score[nodes]
            if level > 1:  # the longest proper suffix that is a prefix: from the parent's fail node on
                fail[nodes] = graph._follow(fail[parent[nodes]], token_of[nodes])
            candidate = fail[nodes]
            found = np.where(is_end[candidate] & (candidate != ROOT), candidate, output[candidate])
            output[nodes] = np.where(candidate == ROOT, -1, found)
            output_score[nodes] = np.where(is_end[nodes], node_score[nodes], 0.0) + np.where(
                output[nodes] >= 0, output_score[np.maximum(output[nodes], 0)], 0.0)
        return graph

    def _child(self, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The trie child of each node on its token, or -1."""
        keys = nodes * self.num_tokens + tokens
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[where] == keys, self.children[where], -1)

    def _follow(self, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Where each token leads from each node, down the fail chain: the child of the first
        node on the chain that has one, else the root."""
        nodes, tokens = np.asarray(nodes, dtype=np.int64).copy(), np.asarray(tokens, dtype=np.int64)
        result = np.full(len(nodes), ROOT, dtype=np.int64)
        pending = np.arange(len(nodes))
        while len(pending):
            child = self._child(nodes[pending], tokens[pending])
            found = child >= 0
            result[pending[found]] = child[found]
            at_root = nodes[pending] == ROOT
            pending = pending[~found & ~at_root]
            nodes[pending] = self.fail[nodes[pending]]
        return result

    def step(self, states, tokens, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(score, next state) of each state on its token: the bonus gained, or taken back when
        a match breaks off; in non-strict mode a completed phrase sends the state to the root."""
        states, tokens = np.asarray(states, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
        nodes = self._follow(states, tokens)
        score = self.node_score[nodes] - self.node_score[states]  # a token's bonus when it continues the match
        matched = self.output_score[nodes] != 0
        if strict:
            return score + self.output_score[nodes], nodes
        longest = np.where(self.is_end[nodes], self.node_score[nodes], self.node_score[np.maximum(self.output[nodes], 0)])
        score = np.where(matched, score + longest - self.node_score[nodes], score)
        return score, np.where(matched, ROOT, nodes)

    def finalize(self, states) -> np.ndarray:
        """The score that ends an utterance in each state: the unfinished match taken back."""
        return -self.node_score[np.asarray(states, dtype=np.int64)]


def read_hotwords(path) -> list[tuple[str, float | None]]:
    """A hotwords file as sherpa-onnx reads it: a phrase a line, optionally ending in ` :SCORE`
    (the bonus of each of its tokens; none: the default). Blank lines are skipped; errors
    name the file and line."""
    hotwords = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            score = None
            if words[-1].startswith(":"):
                try:
                    score = float(words.pop()[1:])
                except ValueError:
                    raise ValueError(f"{path}, line {number}: expected ':SCORE' (a number) at the end, got "
                                     f"{line.split()[-1]!r}") from None
            if not words or any(word.startswith(":") for word in words):
                raise ValueError(f"{path}, line {number}: expected 'WORDS [:SCORE]', got {line.rstrip()!r}")
            hotwords.append((" ".join(words), score))
    return hotwords


def hotword_graph(hotwords: Sequence[tuple[str, float | None]], encode, num_tokens: int,
                  default_score: float) -> ContextGraph:
    """The context graph of (phrase, score) pairs spelled by `encode` (text -> token ids); a
    phrase that cannot be spelled is a ValueError naming it."""
    phrases = []
    for phrase, _ in hotwords:
        try:
            phrases.append(encode(phrase))
        except ValueError as error:
            raise ValueError(f"hotword {phrase!r} cannot be spelled in the model's tokens: {error}") from None
    return ContextGraph.build(phrases, num_tokens, [score or 0.0 for _, score in hotwords], default_score)
