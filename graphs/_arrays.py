"""Vectorized NumPy building blocks for graph structure: ranges, CSR indexes, levels.

Structure (which arcs exist and where they go) is computed on the host with
NumPy; weights stay torch tensors on the graph's device. These helpers are
what lets every algorithm avoid Python loops over arcs and states.
"""

from __future__ import annotations

import numpy as np


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate `arange(s, s + c)` for each (s, c); also return which range each item came from."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if total == 0:
        return np.empty(0, dtype=np.int64), owner
    first = np.cumsum(counts) - counts
    flat = np.arange(total, dtype=np.int64) - first[owner] + np.asarray(starts, dtype=np.int64)[owner]
    return flat, owner


def owner_and_step(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs of these lengths laid end to end: which run each item is in, and its position in it."""
    step, owner = expand_ranges(np.zeros(len(lengths), dtype=np.int64), lengths)
    return owner, step


class CSR:
    """Arcs grouped by a key (a node, or a node and a label): `order[offsets[k]:offsets[k+1]]`
    are the arcs with key k, in their original relative order."""

    __slots__ = ("order", "offsets")

    def __init__(self, keys: np.ndarray, num_keys: int):
        self.order = np.argsort(keys, kind="stable")
        self.offsets = np.zeros(num_keys + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=num_keys), out=self.offsets[1:])

    def counts(self, keys: np.ndarray) -> np.ndarray:
        return self.offsets[keys + 1] - self.offsets[keys]

    def gather(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All arcs under each key: (arc ids, index into `keys` of the key each came from)."""
        flat, owner = expand_ranges(self.offsets[keys], self.counts(keys))
        return self.order[flat], owner


def topological_levels(num_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Longest-path depth of every node from a node with no incoming arcs (Kahn, one
    vectorized step per level). Nodes on or behind a cycle get -1."""
    level = np.full(num_nodes, -1, dtype=np.int64)
    indegree = np.bincount(dst, minlength=num_nodes)
    out = CSR(src, num_nodes)
    frontier = np.flatnonzero(indegree == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        arcs, _ = out.gather(frontier)
        targets, hits = np.unique(dst[arcs], return_counts=True)
        indegree[targets] -= hits
        frontier = targets[indegree[targets] == 0]
        depth += 1
    return level


def unique_first(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys in order of first appearance, and for each input its index among them."""
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.argsort(first, kind="stable")
    position = np.empty_like(rank)
    position[rank] = np.arange(rank.size)
    return uniq[rank], position[inverse.reshape(-1)]


class KeyTable:
    """A growing set of int64 keys mapped to consecutive ids, without a dense table.

    Keys live in sorted chunks merged like a binary counter, so inserting S keys
    costs O(S log S) overall and a lookup searches O(log S) chunks.
    """

    def __init__(self):
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Id of each key, or -1 where the key is not in the table."""
        found = np.full(keys.shape, -1, dtype=np.int64)
        for sorted_keys, ids in self._chunks:
            pos = np.searchsorted(sorted_keys, keys)
            pos[pos == sorted_keys.size] = 0
            hit = sorted_keys[pos] == keys
            found[hit] = ids[pos[hit]]
        return found

    def insert(self, keys: np.ndarray) -> np.ndarray:
        """Add keys that are new and distinct; returns their ids (consecutive, in input order)."""
        ids = np.arange(self.size, self.size + keys.size, dtype=np.int64)
        if keys.size == 0:
            return ids
        self.size += keys.size
        order = np.argsort(keys, kind="stable")
        self._chunks.append((keys[order], ids[order]))
        while len(self._chunks) > 1 and self._chunks[-2][0].size <= 2 * self._chunks[-1][0].size:
            (k1, i1), (k2, i2) = self._chunks[-2], self._chunks[-1]
            merged_keys = np.concatenate([k1, k2])
            order = np.argsort(merged_keys, kind="stable")
            self._chunks[-2:] = [(merged_keys[order], np.concatenate([i1, i2])[order])]
        return ids

    def add(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids for all keys, inserting unseen ones; also returns the ids that are new."""
        uniq, position = unique_first(keys)
        ids = self.lookup(uniq)
        missing = ids < 0
        ids[missing] = self.insert(uniq[missing])
        return ids[position], ids[missing]
