"""Dense intersection: frame emissions [B, T, V] scored against graphs without building the composition.

Every arc consumes one frame: arc a with input label l taken at frame t scores
w_a + log_probs[b, t, l]. The forward recursion runs frame by frame over all
arcs of all graphs at once; each node's incoming arcs are laid out in a padded
[N, K] table so one frame is a gather, an add and a log-sum-exp (or max). The
backward pass computes every frame's arc posteriors in one vectorized step, so
gradients reach the emissions and the graph weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ._batch import Batch
from ._semiring import LOG, TROPICAL, check_semiring
from .graph import EPSILON, Graph, as_list

NEG_INF = float("-inf")


class _Sweep:
    """Frame-synchronous shortest distance over one direction of the arcs.

    Arcs are grouped by their "near" endpoint into a [K, N] table (column n lists the
    arcs reaching node n, padded with a dummy arc E from a dummy node N whose distance
    is always -inf), so one frame is a gather, an add and a K-way log-sum-exp or max.
    """

    CHAIN_WIDTH = 4  # up to this in-degree, chained logaddexp beats torch.logsumexp

    def __init__(self, near: np.ndarray, far: np.ndarray, num_nodes: int, to_tensor):
        num_arcs = near.size
        order = np.argsort(near, kind="stable")
        counts = np.bincount(near, minlength=num_nodes)
        width = max(int(counts.max(initial=0)), 1)
        slot = np.arange(num_arcs) - np.repeat(np.cumsum(counts) - counts, counts)
        arcs = np.full((width, num_nodes), num_arcs, dtype=np.int64)
        arcs[slot, near[order]] = order
        nodes = np.full((width, num_nodes), num_nodes, dtype=np.int64)
        nodes[slot, near[order]] = far[order]
        self.arcs, self.nodes = to_tensor(arcs), to_tensor(nodes)
        self.num_nodes, self.width = num_nodes, width

    def run(self, scores: torch.Tensor, init: torch.Tensor, semiring: str, keep_choices: bool = False):
        """dist [T+1, N+1] from `init` nodes at frame 0 (plus, for tropical with
        keep_choices, the winning slot of every node at every frame [T, N])."""
        num_frames, n = scores.shape[0], self.num_nodes
        pad = torch.full((num_frames, 1), NEG_INF, dtype=scores.dtype, device=scores.device)
        table = torch.cat([scores, pad], dim=1)[:, self.arcs]  # [T, K, N]
        dist = torch.full((num_frames + 1, n + 1), NEG_INF, dtype=scores.dtype, device=scores.device)
        dist[0, init] = 0.0
        choices = torch.zeros((num_frames, n), dtype=torch.long, device=scores.device) if keep_choices else None
        chain = semiring == LOG and self.width <= self.CHAIN_WIDTH
        for t in range(num_frames):
            candidates = dist[t, self.nodes] + table[t]
            if chain:
                step = candidates[0]
                for k in range(1, self.width):
                    step = torch.logaddexp(step, candidates[k])
            elif semiring == LOG:
                step = torch.logsumexp(candidates, dim=0)
            elif keep_choices:
                step, choices[t] = candidates.max(dim=0)
            else:
                step = candidates.amax(dim=0)
            dist[t + 1, :n] = step
        return dist, choices


class _Layout:
    """Structure of a batch of graphs for dense intersection with [B, T, V] emissions.

    Utterances shorter than T keep running past their end; their scores are read at
    their own last frame. The backward distances are a forward sweep over the reversed
    arcs with each utterance's frames reversed, so no frame needs per-utterance masking.
    """

    def __init__(self, batch: Batch, log_probs: torch.Tensor, lengths: torch.Tensor):
        num_frames, vocab = log_probs.shape[1], log_probs.shape[2]
        if batch.num_arcs and (batch.ilabel.max() >= vocab):
            raise ValueError(f"intersect_dense: a graph has label {int(batch.ilabel.max())}, "
                             f"but the emissions have only {vocab} columns")
        t = batch.tensor
        self.batch = batch
        self.num_nodes, self.num_frames, self.vocab = batch.num_nodes, num_frames, vocab
        self.incoming = _Sweep(batch.dst, batch.src, batch.num_nodes, t)
        self.outgoing = _Sweep(batch.src, batch.dst, batch.num_nodes, t)
        self.src, self.dst = t(batch.src), t(batch.dst)
        self.arc_graph = t(batch.arc_graph)
        self.start = t(batch.start)
        self.accept, self.accept_graph = t(batch.accept), t(batch.accept_graph)
        self.lengths = lengths.to(log_probs.device)
        self.arc_length = self.lengths.index_select(0, self.arc_graph)
        # Flat index of log_probs[b, 0, label] for each arc; frame t adds t * vocab.
        self.emission_index = self.arc_graph * (num_frames * vocab) + t(batch.ilabel)

    def frames(self, device) -> torch.Tensor:
        return torch.arange(self.num_frames, device=device).unsqueeze(1)

    def arc_scores(self, log_probs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """[T, E] score of taking each arc at each frame: weight + emission."""
        flat = self.emission_index.unsqueeze(0) + self.frames(log_probs.device) * self.vocab
        return log_probs.reshape(-1)[flat] + weight.unsqueeze(0)

    def forward(self, scores: torch.Tensor, semiring: str, keep_choices: bool = False):
        return self.incoming.run(scores, self.start, semiring, keep_choices)

    def _reversed_frame(self, offset: int, device) -> torch.Tensor:
        """[T, E] frame index length - offset - t of each arc's utterance, clamped to the range."""
        return (self.arc_length.unsqueeze(0) - offset - self.frames(device)).clamp(0, self.num_frames - 1)

    def backward(self, scores: torch.Tensor, semiring: str) -> torch.Tensor:
        """Reversed-time distances: rev[s, n] scores the last s frames of n's utterance from node n."""
        flipped = scores.gather(0, self._reversed_frame(1, scores.device))
        rev, _ = self.outgoing.run(flipped, self.accept, semiring)
        return rev

    def totals(self, alpha: torch.Tensor, semiring: str) -> torch.Tensor:
        """Per graph: semiring sum over accept nodes of alpha after the utterance's last frame."""
        from ._semiring import segment_reduce

        at_end = alpha[self.lengths.index_select(0, self.accept_graph), self.accept]
        return segment_reduce(at_end, self.accept_graph, self.batch.size, semiring)

    def occupancy(self, scores, alpha, rev, totals) -> torch.Tensor:
        """[T, E] posterior of taking each arc at each frame (0 past an utterance's end or without paths)."""
        z = totals.index_select(0, self.arc_graph)
        remaining = self._reversed_frame(1, scores.device)  # frames left after frame t
        after = rev.reshape(-1)[remaining * rev.shape[1] + self.dst.unsqueeze(0)]
        log_post = alpha[:-1, self.src] + scores + after - z
        valid = (self.frames(scores.device) < self.arc_length.unsqueeze(0)) & torch.isfinite(z).unsqueeze(0)
        return torch.where(valid, torch.exp(log_post), torch.zeros_like(log_post))

    def best_arcs(self, alpha, choices, totals) -> torch.Tensor:
        """[B, T] arc taken at each frame on each graph's best path (-1 past its end or without a path)."""
        size, device = self.batch.size, alpha.device
        at_end = alpha[self.lengths.index_select(0, self.accept_graph), self.accept]
        hit = (at_end == totals.index_select(0, self.accept_graph)) & torch.isfinite(at_end)
        # First accept node reaching the best score, per graph.
        count = self.accept.numel()
        first = torch.full((size,), count, dtype=torch.long, device=device)
        first = first.scatter_reduce(0, self.accept_graph[hit], torch.arange(count, device=device)[hit], reduce="amin")
        found = first < count
        node = torch.where(found, self.accept[first.clamp(max=max(count - 1, 0))], torch.zeros_like(first)) \
            if count else torch.zeros_like(first)
        path = torch.full((size, self.num_frames), -1, dtype=torch.long, device=device)
        for t in range(self.num_frames - 1, -1, -1):
            live = found & (self.lengths > t)
            slot = choices[t].index_select(0, node)
            path[:, t] = torch.where(live, self.incoming.arcs[slot, node], path[:, t])
            node = torch.where(live, self.incoming.nodes[slot, node], node)
        return path


class _DenseScore(torch.autograd.Function):
    """Per-graph score of the emissions; backward gives posteriors w.r.t. emissions and weights."""

    @staticmethod
    def forward(ctx, log_probs, weight, layout: _Layout, semiring: str):
        scores = layout.arc_scores(log_probs, weight)
        alpha, choices = layout.forward(scores, semiring, keep_choices=semiring == TROPICAL)
        totals = layout.totals(alpha, semiring)
        ctx.layout, ctx.semiring = layout, semiring
        ctx.save_for_backward(scores, alpha, totals, choices if choices is not None else totals)
        ctx.shape = log_probs.shape
        return totals

    @staticmethod
    def backward(ctx, grad_totals):
        scores, alpha, totals, choices = ctx.saved_tensors
        layout = ctx.layout
        if ctx.semiring == LOG:
            beta = layout.backward(scores, LOG)
            occupancy = layout.occupancy(scores, alpha, beta, totals)
        else:
            arcs = layout.best_arcs(alpha, choices, totals)
            occupancy = torch.zeros_like(scores)
            frames = torch.arange(layout.num_frames, device=scores.device).expand_as(arcs)
            taken = arcs >= 0
            occupancy[frames[taken], arcs[taken]] = 1.0
        occupancy = occupancy * grad_totals.index_select(0, layout.arc_graph).unsqueeze(0)
        grad_weight = occupancy.sum(dim=0)
        frames = torch.arange(layout.num_frames, device=scores.device).unsqueeze(1) * layout.vocab
        flat = (layout.emission_index.unsqueeze(0) + frames).reshape(-1)
        grad_log_probs = torch.zeros(ctx.shape.numel(), dtype=scores.dtype, device=scores.device)
        grad_log_probs.index_add_(0, flat, occupancy.reshape(-1))
        return grad_log_probs.reshape(ctx.shape), grad_weight, None, None


def _prepare(log_probs: torch.Tensor, lengths, graphs, semiring: str = LOG) -> tuple[Batch, torch.Tensor]:
    if log_probs.dim() != 3:
        raise ValueError(f"intersect_dense: log_probs must be [B, T, V], got shape {tuple(log_probs.shape)}")
    size, num_frames = log_probs.shape[0], log_probs.shape[1]
    lengths = torch.as_tensor(lengths, device=log_probs.device).reshape(-1).long()
    if lengths.numel() != size:
        raise ValueError(f"intersect_dense: {lengths.numel()} lengths for a batch of {size}")
    if size and (int(lengths.min()) < 0 or int(lengths.max()) > num_frames):
        raise ValueError(f"intersect_dense: lengths must lie in [0, {num_frames}], got {lengths.tolist()}")
    items, single = as_list(graphs)
    if single:
        items = items * size
    elif len(items) != size:
        raise ValueError(f"intersect_dense: {len(items)} graphs for a batch of {size} utterances")
    for g in items:
        if g.device != log_probs.device:
            raise ValueError(f"intersect_dense: graph on {g.device}, emissions on {log_probs.device}")
    if any(bool((g.ilabel == EPSILON).any()) for g in set(items)):
        from .epsilon import remove_epsilon
        from .rational import project_input

        # Only input labels meet the emissions; a leftover epsilon arc (the weight of an
        # empty sequence) can never consume a frame, so it is dropped by the sweep.
        items = remove_epsilon(project_input(items), semiring)
    return Batch(items), lengths


def intersect_dense(
    log_probs: torch.Tensor, lengths, graphs: Graph | Sequence[Graph], semiring: str = LOG
) -> torch.Tensor:
    """Score each utterance's emissions `log_probs[b, :lengths[b]]` ([B, T, V]) against its
    graph (one graph shared by all, or one per utterance): the log-sum-exp ("log") or max
    ("tropical") over accepting paths of exactly lengths[b] arcs of the summed arc weights
    and emission scores of their input labels. Returns [B]; differentiable with respect to
    the emissions and the graph weights. Epsilon input labels are removed first."""
    check_semiring(semiring)
    batch, lengths = _prepare(log_probs, lengths, graphs, semiring)
    batch = _without_epsilon_arcs(batch)
    layout = _Layout(batch, log_probs, lengths)
    weight = batch.weight.to(log_probs.dtype)
    return _DenseScore.apply(log_probs, weight, layout, semiring)


@dataclass
class DenseAlignment:
    """Best path of each utterance through its graph: score [B]; per frame the arc taken
    ([B, T], index into that utterance's graph, -1 past its end) and its input label."""

    score: torch.Tensor
    arcs: torch.Tensor
    labels: torch.Tensor


def align_dense(log_probs: torch.Tensor, lengths, graphs: Graph | Sequence[Graph]) -> DenseAlignment:
    """Viterbi alignment of emissions to graphs: which arc (and label) each frame takes on
    the best path. Graphs with epsilon input labels must be epsilon-free here, since arc
    indices refer to the given graphs."""
    batch, lengths = _prepare(log_probs, lengths, graphs)
    if (batch.ilabel == EPSILON).any():
        raise ValueError("align_dense: graphs must have no epsilon input labels (arc indices refer to them)")
    layout = _Layout(batch, log_probs, lengths)
    with torch.no_grad():
        scores = layout.arc_scores(log_probs.detach(), batch.weight.detach().to(log_probs.dtype))
        alpha, choices = layout.forward(scores, TROPICAL, keep_choices=True)
        totals = layout.totals(alpha, TROPICAL)
        arcs = layout.best_arcs(alpha, choices, totals)
    labels = torch.where(arcs >= 0, batch.tensor(batch.ilabel)[arcs.clamp(min=0)], torch.full_like(arcs, -1))
    local = arcs - batch.tensor(batch.arc_offset[:-1]).unsqueeze(1)
    return DenseAlignment(totals, torch.where(arcs >= 0, local, arcs), labels)


def _without_epsilon_arcs(batch: Batch) -> Batch:
    """Drop the epsilon arcs remove_epsilon may leave (they cannot consume a frame)."""
    if not (batch.ilabel == EPSILON).any():
        return batch
    from ._batch import select

    keep = batch.ilabel != EPSILON
    return Batch(select(batch, np.ones(batch.num_nodes, dtype=bool), keep))
