"""The `Graph` type: a weighted finite-state transducer whose arc arrays are torch tensors.

Conventions (gtn-compatible): any number of start and accept nodes, no final
weights, `EPSILON == -1`, weights are log-domain scores where higher is better.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

EPSILON = -1

_ARC_FIELDS = ("src", "dst", "ilabel", "olabel", "weight")


class Graph:
    """A weighted transducer. Build it node by node (`add_node`, `add_arc`) or in
    one call from arrays (`Graph.from_arrays`); read it through tensor properties.

    Arcs added one at a time are buffered in Python lists and turned into tensors
    on first read, so incremental construction stays cheap and tensor reads stay
    vectorized. Weights may require grad; which operations keep the link is listed in
    docs/operations.md.
    """

    def __init__(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        if not dtype.is_floating_point:
            raise TypeError(f"Graph weights need a floating dtype, got {dtype}")
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._dtype = dtype
        self._num_nodes = 0
        empty_long = torch.empty(0, dtype=torch.long, device=self._device)
        self._tensors = {
            "src": empty_long,
            "dst": empty_long,
            "ilabel": empty_long,
            "olabel": empty_long,
            "weight": torch.empty(0, dtype=dtype, device=self._device),
            "start": empty_long,
            "accept": empty_long,
        }
        self._pending = {name: [] for name in self._tensors}
        self._cache: dict = {}

    # ------------------------------------------------------------------ building
    def add_node(self, start: bool = False, accept: bool = False) -> int:
        """Add a node and return its index."""
        node = self._num_nodes
        self._num_nodes += 1
        if start:
            self._pending["start"].append(node)
        if accept:
            self._pending["accept"].append(node)
        self._cache.clear()
        return node

    def add_arc(self, src: int, dst: int, ilabel: int, olabel: int | None = None, weight: float = 0.0) -> int:
        """Add an arc and return its index; `olabel=None` makes an acceptor arc."""
        if olabel is None:
            olabel = ilabel
        for name, node in (("src", src), ("dst", dst)):
            if not 0 <= node < self._num_nodes:
                raise ValueError(f"add_arc: {name} node {node} does not exist (graph has {self._num_nodes} nodes)")
        for name, label in (("ilabel", ilabel), ("olabel", olabel)):
            if label < EPSILON:
                raise ValueError(f"add_arc: {name} {label} is below EPSILON ({EPSILON})")
        weight = float(weight)
        if math.isnan(weight):
            raise ValueError("add_arc: weight is NaN")
        arc = self.num_arcs
        for name, value in zip(_ARC_FIELDS, (src, dst, ilabel, olabel, weight)):
            self._pending[name].append(value)
        self._cache.clear()
        return arc

    @classmethod
    def from_arrays(
        cls,
        src,
        dst,
        ilabel,
        olabel=None,
        weight=None,
        start=(),
        accept=(),
        num_nodes: int | None = None,
        *,
        device=None,
        dtype: torch.dtype | None = None,
        validate: bool = True,
    ) -> "Graph":
        """Build a graph from arc arrays (tensors, arrays or lists) in one call.

        `olabel=None` makes an acceptor, `weight=None` gives zero weights, and
        `num_nodes=None` takes one more than the largest node mentioned. A weight
        tensor that requires grad is kept as is, so gradients reach it.
        """
        if isinstance(weight, torch.Tensor):
            dev = weight.device if device is None else torch.device(device)
            dtype = dtype or (weight.dtype if weight.dtype.is_floating_point else torch.float32)
        else:
            dev = _first_device((src, dst, ilabel, olabel)) if device is None else torch.device(device)
            dtype = dtype or torch.float32
        tensors = {}
        for name, value in (("src", src), ("dst", dst), ("ilabel", ilabel)):
            tensors[name] = _as_long(value, dev, name)
        tensors["olabel"] = tensors["ilabel"].clone() if olabel is None else _as_long(olabel, dev, "olabel")
        num_arcs = tensors["src"].numel()
        if weight is None:
            tensors["weight"] = torch.zeros(num_arcs, dtype=dtype, device=dev)
        elif isinstance(weight, torch.Tensor):
            if weight.device != dev:
                raise ValueError(f"from_arrays: weight is on {weight.device} but the arcs are on {dev}")
            tensors["weight"] = weight.reshape(-1) if weight.dtype == dtype else weight.reshape(-1).to(dtype)
        else:
            tensors["weight"] = torch.as_tensor(np.asarray(weight, dtype=np.float64), device=dev).to(dtype).reshape(-1)
        tensors["start"] = _as_long(start, dev, "start")
        tensors["accept"] = _as_long(accept, dev, "accept")
        for name in ("dst", "ilabel", "olabel", "weight"):
            if tensors[name].numel() != num_arcs:
                raise ValueError(f"from_arrays: {name} has {tensors[name].numel()} entries, src has {num_arcs}")
        if num_nodes is None:
            mentioned = [t for k, t in tensors.items() if k in ("src", "dst", "start", "accept") and t.numel()]
            num_nodes = int(max(int(t.max()) for t in mentioned)) + 1 if mentioned else 0
        graph = cls(device=dev, dtype=dtype)
        graph._num_nodes = int(num_nodes)
        tensors["start"] = torch.unique(tensors["start"])
        tensors["accept"] = torch.unique(tensors["accept"])
        graph._tensors = tensors
        if validate:
            graph.validate()
        return graph

    @classmethod
    def from_tensors(cls, num_nodes: int, src, dst, ilabel, olabel, weight, start, accept) -> "Graph":
        """A graph made of tensors that already meet `validate`'s rules, 1-D, with long labels
        and nodes, sorted distinct start and accept nodes, all on the weight's device. They are
        used as they are, neither copied nor checked, so an algorithm can return its result
        without another pass; `from_arrays` takes anything else."""
        graph = cls(device=weight.device, dtype=weight.dtype)
        graph._num_nodes = int(num_nodes)
        graph._tensors = {"src": src, "dst": dst, "ilabel": ilabel, "olabel": olabel, "weight": weight,
                          "start": start, "accept": accept}
        return graph

    # ------------------------------------------------------------------ reading
    def _flush(self) -> None:
        """Move buffered nodes/arcs from Python lists into the tensors."""
        if not any(self._pending.values()):
            return
        for name, values in self._pending.items():
            if not values:
                continue
            current = self._tensors[name]
            extra = torch.tensor(values, dtype=current.dtype, device=self._device)
            self._tensors[name] = torch.cat([current, extra])
            values.clear()

    def _get(self, name: str) -> torch.Tensor:
        self._flush()
        return self._tensors[name]

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def num_arcs(self) -> int:
        return self._tensors["src"].numel() + len(self._pending["src"])

    @property
    def src(self) -> torch.Tensor:
        return self._get("src")

    @property
    def dst(self) -> torch.Tensor:
        return self._get("dst")

    @property
    def ilabel(self) -> torch.Tensor:
        return self._get("ilabel")

    @property
    def olabel(self) -> torch.Tensor:
        return self._get("olabel")

    @property
    def weight(self) -> torch.Tensor:
        return self._get("weight")

    @weight.setter
    def weight(self, value: torch.Tensor) -> None:
        """Replace all arc weights (e.g. with a learnable tensor); shape must match."""
        self._flush()
        value = torch.as_tensor(value, device=self._device)
        if value.shape != (self.num_arcs,):
            raise ValueError(f"weight must have shape ({self.num_arcs},), got {tuple(value.shape)}")
        if not value.dtype.is_floating_point:
            value = value.to(self._dtype)
        self._tensors["weight"] = value
        self._dtype = value.dtype

    @property
    def start(self) -> torch.Tensor:
        """Start nodes, sorted."""
        return self._get("start")

    @property
    def accept(self) -> torch.Tensor:
        """Accept nodes, sorted."""
        return self._get("accept")

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def is_acceptor(self) -> bool:
        return bool(torch.equal(self.ilabel, self.olabel))

    def arcs(self) -> list[tuple[int, int, int, int, float]]:
        """All arcs as Python tuples `(src, dst, ilabel, olabel, weight)`, for inspection."""
        w = self.weight.detach().cpu().tolist()
        cols = [self._get(n).cpu().tolist() for n in _ARC_FIELDS[:4]]
        return list(zip(*cols, w))

    def cached(self, key: str, make: Callable[[], object]):
        """`make()`, computed once and kept until a node or arc is added: for values derived
        from the structure alone (not the weights), such as a scoring schedule."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def numpy(self) -> "Structure":
        """Host-side NumPy view of the structure (not the weights), cached until the graph changes."""

        def make() -> Structure:
            self._flush()
            arrays = {n: self._tensors[n].cpu().numpy() for n in ("src", "dst", "ilabel", "olabel", "start", "accept")}
            return Structure(num_nodes=self._num_nodes, **arrays)

        return self.cached("numpy", make)

    # ------------------------------------------------------------------ copies
    def to(self, device=None, dtype: torch.dtype | None = None) -> "Graph":
        """Copy to another device and/or weight dtype (gradients flow back through the copy)."""
        self._flush()
        device = torch.device(device) if device is not None else self._device
        dtype = dtype or self._dtype
        tensors = {n: t.to(device) for n, t in self._tensors.items() if n != "weight"}
        tensors["weight"] = self._tensors["weight"].to(device=device, dtype=dtype)
        return Graph.from_tensors(self._num_nodes, **tensors)

    def clone(self) -> "Graph":
        """A copy whose weights are `weight.clone()` (still linked to this graph's weights)."""
        self._flush()
        return Graph.from_tensors(self._num_nodes, **{n: t.clone() for n, t in self._tensors.items()})

    def detach(self) -> "Graph":
        """The same graph with weights cut from the autograd graph."""
        self._flush()
        tensors = dict(self._tensors)
        tensors["weight"] = tensors["weight"].detach()
        return Graph.from_tensors(self._num_nodes, **tensors)

    def validate(self) -> None:
        """Raise ValueError if an arc names a missing node, a label is below EPSILON,
        a weight is NaN, or arrays live on different devices."""
        self._flush()
        t = self._tensors
        devices = {v.device for v in t.values()}
        if len(devices) > 1:
            raise ValueError(f"graph tensors are on mixed devices: {sorted(map(str, devices))}")
        n = self._num_nodes
        for name in ("src", "dst", "start", "accept"):
            v = t[name]
            if v.numel() and (int(v.min()) < 0 or int(v.max()) >= n):
                bad = v[(v < 0) | (v >= n)][0].item()
                raise ValueError(f"{name} names node {bad}, but the graph has {n} nodes (0..{n - 1})")
        for name in ("ilabel", "olabel"):
            v = t[name]
            if v.numel() and int(v.min()) < EPSILON:
                raise ValueError(f"{name} {int(v.min())} is below EPSILON ({EPSILON})")
        if t["weight"].numel() and bool(torch.isnan(t["weight"]).any()):
            arc = int(torch.nonzero(torch.isnan(t["weight"]))[0])
            raise ValueError(f"weight of arc {arc} is NaN")

    def __repr__(self) -> str:
        return (
            f"Graph(num_nodes={self.num_nodes}, num_arcs={self.num_arcs}, start={self.start.tolist()[:8]}, "
            f"accept={self.accept.tolist()[:8]}, device={self.device}, dtype={self.dtype})"
        )


class Structure:
    """NumPy arrays describing a graph's nodes and arcs (no weights)."""

    __slots__ = ("num_nodes", "src", "dst", "ilabel", "olabel", "start", "accept")

    def __init__(self, num_nodes, src, dst, ilabel, olabel, start, accept):
        self.num_nodes = num_nodes
        self.src, self.dst, self.ilabel, self.olabel = src, dst, ilabel, olabel
        self.start, self.accept = start, accept


def _first_device(values: Iterable) -> torch.device:
    for v in values:
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")


def _as_long(value, device: torch.device, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.device != device:
            raise ValueError(f"from_arrays: {name} is on {value.device} but the graph is on {device}")
        if value.dtype.is_floating_point:
            raise TypeError(f"from_arrays: {name} must hold integers, got {value.dtype}")
        return value.reshape(-1).long()
    array = np.asarray(value)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"from_arrays: {name} must hold integers, got {array.dtype}")
    return torch.as_tensor(array.astype(np.int64).reshape(-1), device=device)


def as_list(graphs: "Graph | Sequence[Graph]") -> tuple[list[Graph], bool]:
    """Normalize the 'one graph or a list of graphs' argument; returns (list, was_single)."""
    if isinstance(graphs, Graph):
        return [graphs], True
    graphs = list(graphs)
    for i, g in enumerate(graphs):
        if not isinstance(g, Graph):
            raise TypeError(f"expected a Graph or a list of Graphs; item {i} is {type(g).__name__}")
    return graphs, False
