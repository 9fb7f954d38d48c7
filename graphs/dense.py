"""Dense intersection: frame emissions [B, T, V] scored against graphs without building the composition.

Every arc consumes one frame: arc a with input label l taken at frame t scores
w_a + log_probs[b, t, l]. The recursion runs frame by frame over all arcs of all
graphs at once: each node's incoming arcs are laid out in a padded [K, N] table,
so one frame is a gather, an add and a K-way logaddexp (or max). Gradients reach
the emissions and the graph weights through node or arc posteriors computed for
all frames at once.

The frame loop is Python, so the number of tensor ops per frame matters as much
as their size. What keeps both low (measured on CPU; the same code runs on CUDA):

- Emissions are read once per distinct (graph, input label) pair ("pair"), [T, P],
  not per arc, and their gradient is scattered back to [B, T, V] from [T, P].
- One frame is index_select + add + ceil(log2 K) logaddexp (maximum) ops writing into
  preallocated rows (`out=`); advanced indexing and logsumexp cost several times more
  at these sizes. Nodes are ordered by in-degree, so a reduction step only touches the
  nodes that have that many in-arcs.
- With gradients, the backward (beta) sweep runs in the same loop as the forward one:
  both directions form one "virtual" graph of 2N nodes over one state vector, which
  halves the per-frame op count. The backward sweep runs in global time from frame T
  down; an utterance of length L < T starts (its accept nodes are set) when the loop
  reaches frame L, so nothing is reversed or masked per utterance, and posteriors of
  frames past an utterance's end come out exactly 0.
- "Node form": when all arcs into a node read the same emission column (every CTC
  state; HMM-like and linear graphs), the emission is added once per node after the
  reduction ([T, N] scores) instead of once per arc slot ([T, K, N]). The backward
  half then holds beta plus the emission of the frame that entered the node, which
  keeps that property for the reversed arcs. The emission gradient of such a node is
  its occupancy alpha + beta ([T, N]); arc posteriors ([T, E]) are only formed for
  arcs into other nodes, or for all arcs when the graph weights need a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ._batch import Batch
from ._semiring import LOG, TROPICAL, check_semiring, segment_argmax, segment_reduce
from .graph import EPSILON, Graph, as_list

NEG_INF = float("-inf")
LOG2_E = 1.4426950408889634


def _scaled_exp_(x: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x <- scale * exp(x - offset) in place, `offset` and `scale` broadcast over x's rows.

    Computed as exp2(x * log2(e) - c): on CPU torch.exp takes a slow path for -inf and
    underflowing inputs (3-10x slower on posteriors, where most entries are such), exp2 does
    not. The change of base adds a relative rounding of ~|x| * 2^-p: at most ~2e-8 absolute in
    float32 (at x ~ -1), ~1e-16 in float64. When no scale is negative (any loss -sum c_b *
    score_b with c_b >= 0, e.g. a mean), log2(scale) goes into c (log2(0) = -inf gives exactly
    0), which saves a pass over x."""
    folded = bool((scale >= 0).all())
    shift = offset * LOG2_E - torch.log2(scale) if folded else offset * LOG2_E
    torch.add(-shift, x, alpha=LOG2_E, out=x)
    x.exp2_()
    return x if folded else x.mul_(scale)


class _Sweep:
    """Frame-synchronous shortest distance over arcs grouped by their "near" node.

    Works on "virtual" arcs 0..A-1 numbered by the caller. The state vector has one
    position per node plus a last pad position M that stays -inf. Positions are sorted
    by descending in-degree, so row k of the padded [K, M] in-arc tables is occupied only
    in its first `counts[k]` positions (each reduction step touches only those), and the
    positions of nodes without in-arcs, from `counts[0]` on, are never written by a step.
    `arcs[k, p]`: the virtual arc in slot k of position p (A on padding); `far[k, p]`: the
    position it comes from (M on padding); `position[n]`: node n's position;
    `node_at[p]`: the node at position p.
    """

    def __init__(self, near: np.ndarray, far: np.ndarray, num_nodes: int, to_tensor):
        num_arcs = near.size
        degree = np.bincount(near, minlength=num_nodes)
        node_at = np.argsort(-degree, kind="stable")
        position = np.empty(num_nodes + 1, dtype=np.int64)
        position[node_at] = np.arange(num_nodes)
        position[num_nodes] = num_nodes
        width = max(int(degree.max(initial=0)), 1)
        near_pos = position[near]
        order = np.argsort(near_pos, kind="stable")
        counts = degree[node_at]
        slot = np.arange(num_arcs) - np.repeat(np.cumsum(counts) - counts, counts)
        arcs = np.full((width, num_nodes), num_arcs, dtype=np.int64)
        arcs[slot, near_pos[order]] = order
        far_pos = np.full((width, num_nodes), num_nodes, dtype=np.int64)
        far_pos[slot, near_pos[order]] = position[far[order]]
        self.arcs_np, self.node_at = arcs, node_at
        self.arcs, self.far, self.position = to_tensor(arcs), to_tensor(far_pos), to_tensor(position)
        self.num_nodes, self.width = num_nodes, width
        self.counts = [int((degree > k).sum()) for k in range(width)]

    def run(self, num_frames: int, inject: dict, semiring: str, like: torch.Tensor, *, slot_scores=None,
            slot_weight=None, node_scores=None, keep_choices: bool = False):
        """Distances dist [T+1, M+1] (row i: after i steps, by position; `like` gives dtype and
        device) and, for tropical with keep_choices, the winning slot of every position at
        every step [T, M].

        Step i scores a slot's arc either as slot_scores[i] ([T, K, M], -inf on padding) or
        as slot_weight ([K * M] constant, None for all 0) with node_scores[i] ([T, counts[0]])
        added to each position after the reduction. `inject[i] = (positions, values)` is
        written into row i before step i reads it (row 0: the initial nodes; otherwise -inf).
        """
        width, m = self.width, self.num_nodes
        # Every step writes positions [:counts[0]] of its row; only the rest needs filling here.
        dist = torch.empty((num_frames + 1, m + 1), dtype=like.dtype, device=like.device)
        dist[0].fill_(NEG_INF)
        dist[1:, self.counts[0]:].fill_(NEG_INF)
        rows = dist.unbind(0)
        heads = _Heads(dist)
        cand = torch.empty(width * m, dtype=like.dtype, device=like.device)
        grid = cand.view(width, m)
        far = self.far.reshape(-1)
        slot_rows = slot_scores.reshape(num_frames, width * m).unbind(0) if slot_scores is not None else None
        node_rows = node_scores.unbind(0) if node_scores is not None else None
        reached = heads[self.counts[0]] if node_scores is not None else None
        choices = None
        if keep_choices:
            choices = torch.zeros((num_frames, m), dtype=torch.long, device=like.device)
            out = heads[m]
        else:
            plus = torch.logaddexp if semiring == LOG else torch.maximum
            folds, last, copy = self._folds(grid, heads)
        for i in range(num_frames):
            if i in inject:
                rows[i].index_copy_(0, *inject[i])
            torch.index_select(rows[i], 0, far, out=cand)
            if slot_rows is not None:
                cand.add_(slot_rows[i])
            elif slot_weight is not None:
                cand.add_(slot_weight)
            if keep_choices:
                torch.max(grid, 0, out=(out[i + 1], choices[i]))
            else:
                for dest, other in folds:
                    plus(dest, other, out=dest)
                if last is not None:
                    plus(last[0], last[1], out=last[2][i + 1])
                if copy is not None:
                    copy[1][i + 1].copy_(copy[0])
            if node_rows is not None:
                reached[i + 1].add_(node_rows[i])
        if num_frames in inject:
            rows[num_frames].index_copy_(0, *inject[num_frames])
        return dist, choices

    def _folds(self, grid: torch.Tensor, heads: "_Heads"):
        """Views for the K-way reduction of `grid` [K, M] into dist rows, as a tree: each fold
        combines the last rows into the first ones (over the positions they occupy); the last
        fold writes rows 0 and 1 into the output row. Returns (folds, last, copy): `last` is
        (row 0 part, row 1 part, output rows); `copy` (row 0 part, output rows) copies the
        positions with a single in-arc when there are too many to fold with -inf padding."""
        counts, rows = self.counts, self.width
        folds = []
        while rows > 2:
            half = rows // 2
            c = counts[rows - half]
            if c:
                folds.append((grid[:half, :c], grid[rows - half:rows, :c]))
            rows -= half
        c0 = counts[0]
        if self.width == 1:
            return folds, None, (grid[0, :c0], heads[c0])
        c1 = counts[1]
        if 8 * (c0 - c1) <= c0:  # few single-arc positions: fold them with the padding
            c1 = c0
        last = (grid[0, :c1], grid[1, :c1], heads[c1])
        copy = (grid[0, c1:c0], heads.dist[:, c1:c0].unbind(0)) if c0 > c1 else None
        return folds, last, copy


class _Heads:
    """`heads[c]`: the views dist[i, :c] of all rows i, made by one unbind call per width c
    and shared by every part of the frame loop that writes that prefix (views cost ~1 us
    each, so they are made before the loop, not per frame)."""

    def __init__(self, dist: torch.Tensor):
        self.dist, self._views = dist, {}

    def __getitem__(self, width: int):
        if width not in self._views:
            self._views[width] = self.dist[:, :width].unbind(0)
        return self._views[width]


class _Layout:
    """Structure of a batch of graphs for dense intersection with [B, T, V] emissions.

    Utterances shorter than T keep running forward past their end; their scores are read
    at their own last frame. Emissions are read per distinct (graph, input label) pair:
    `pair_of_arc` [E], `emission_index` [T, P] (flat index into log_probs).

    Ops on [T, x] tensors are kept few, not only short: on CPU each one large enough for
    torch to run it on several threads waits for all of them, which costs milliseconds when
    the cores are busy with other work.
    """

    def __init__(self, batch: Batch, log_probs: torch.Tensor, lengths: torch.Tensor):
        num_frames, vocab = log_probs.shape[1], log_probs.shape[2]
        if batch.num_arcs and (batch.ilabel.max() >= vocab):
            raise ValueError(f"intersect_dense: a graph has label {int(batch.ilabel.max())}, "
                             f"but the emissions have only {vocab} columns")
        t = batch.tensor
        device = log_probs.device
        self.batch = batch
        self.num_nodes, self.num_frames, self.vocab = batch.num_nodes, num_frames, vocab
        self.src, self.dst = t(batch.src), t(batch.dst)
        self.arc_graph, self.node_graph = t(batch.arc_graph), t(batch.node_graph)
        self.start = t(batch.start)
        self.accept, self.accept_graph = t(batch.accept), t(batch.accept_graph)
        self.lengths = lengths.to(device)
        self.host_lengths = lengths.cpu().numpy()
        keys, pair_of_arc = np.unique(batch.arc_graph * vocab + batch.ilabel, return_inverse=True)
        self.pair_of_arc_np = pair_of_arc.reshape(-1)
        self.pair_of_arc, self.num_pairs = t(self.pair_of_arc_np), keys.size
        # Built with NumPy: index arithmetic as torch ops would be [T, P] ops of their own.
        base = (keys // vocab) * (num_frames * vocab) + keys % vocab
        self.emission_index_np = base[None, :] + (np.arange(num_frames, dtype=np.int64) * vocab)[:, None]
        self.emission_index = t(self.emission_index_np)
        self._node_pairs()
        self._sweeps: dict[bool, _Sweep] = {}

    def _node_pairs(self):
        """`node_pair_np[n]`: the pair every arc into node n reads (-1 without in-arcs or when
        they differ); `node_set` / `node_pair`: the nodes that have one and their pair;
        `other_arcs`: arcs into the other nodes; `node_form`: every arc reaches a node_set node."""
        batch, n = self.batch, self.num_nodes
        node_pair = np.full(n, -1, dtype=np.int64)
        if batch.num_arcs:
            order = np.lexsort((self.pair_of_arc_np, batch.dst))
            pairs = self.pair_of_arc_np[order]
            counts = np.bincount(batch.dst, minlength=n)
            ends = np.cumsum(counts)
            has = np.flatnonzero(counts)
            first, last = pairs[ends[has] - counts[has]], pairs[ends[has] - 1]
            node_pair[has[first == last]] = first[first == last]
        nodes = np.flatnonzero(node_pair >= 0)
        other = np.flatnonzero(node_pair[batch.dst] < 0)
        self.node_pair_np = node_pair
        self.node_set, self.node_pair = self.batch.tensor(nodes), self.batch.tensor(node_pair[nodes])
        self.other_arcs = self.batch.tensor(other)
        self.node_form = batch.num_arcs > 0 and other.size == 0

    def sweep(self, both: bool) -> _Sweep:
        """The forward sweep over incoming arcs (virtual arc a = arc a), or with `both` the
        forward and backward sweeps as one: virtual arc E + a runs arc a backwards between
        copies N + n of the nodes and reads frame T - 1 - i at step i. Adds `arc` (the real arc
        of each slot, E on padding) and either `column` (slot form: each slot's column in
        `source`) or `node_column` (node form: each written position's column in `source`)."""
        if both not in self._sweeps:
            b, n, num_arcs, pairs = self.batch, self.num_nodes, self.batch.num_arcs, self.num_pairs
            if both:
                sweep = _Sweep(np.concatenate([b.dst, b.src + n]), np.concatenate([b.src, b.dst + n]), 2 * n, b.tensor)
            else:
                sweep = _Sweep(b.dst, b.src, n, b.tensor)
            arcs = sweep.arcs_np
            pad = arcs == (2 if both else 1) * num_arcs
            real = np.where(pad, 0, arcs % max(num_arcs, 1))
            sweep.arc = b.tensor(np.where(pad, num_arcs, real))
            if self.node_form:
                nodes = sweep.node_at[:sweep.counts[0]]
                sweep.node_column = b.tensor(self.node_pair_np[nodes % n] + np.where(nodes >= n, pairs, 0))
            else:  # padding reads source's last column, -inf
                column = self.pair_of_arc_np[real] + np.where(arcs >= num_arcs, pairs, 0) if num_arcs else real
                sweep.column = b.tensor(np.where(pad, (2 if both else 1) * pairs, column))
            self._sweeps[both] = sweep
        return self._sweeps[both]

    def source(self, log_probs: torch.Tensor, both: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Emission scores by step [T, C], read from log_probs in one gather: the pairs at frame
        i; with `both`, the pairs at the backward half's frame (slot form: T - 1 - i, the frame
        consumed; node form: T - 2 - i, the frame that entered the node before it, 0 at the
        last step); a last column of -inf (padding). Also returns the emissions [T, P] (a view)."""
        num_frames, pairs = self.num_frames, self.num_pairs
        index = self.emission_index_np
        if both:
            back = index[::-1] if not self.node_form else np.concatenate([index[-2::-1], index[:1]])
            index = np.concatenate([index, back], axis=1)
        columns = index.shape[1] + 1
        if log_probs.numel():
            index = np.concatenate([index, np.zeros((num_frames, 1), dtype=np.int64)], axis=1)
            flat = log_probs.reshape(-1).index_select(0, self.batch.tensor(index.reshape(-1)))
            source = flat.view(num_frames, columns)
        else:
            source = log_probs.new_zeros(num_frames, columns)
        source[:, -1] = NEG_INF
        if both and self.node_form and num_frames:
            source[-1, pairs:2 * pairs] = 0.0
        return source, source[:, :pairs]

    def scores(self, sweep: _Sweep, source: torch.Tensor, weight: torch.Tensor) -> dict:
        """Per-step arc scores for `_Sweep.run`, from `source`. Slot form: [T, K, M] emission +
        weight of each slot's arc. Node form: the emission of each written position [T, counts[0]]
        and the slot weights (None if all are 0)."""
        slot_weight = None
        if weight.numel() and bool(weight.ne(0).any()):
            slot_weight = torch.cat([weight, weight.new_zeros(1)])[sweep.arc].reshape(-1)
        if self.node_form:
            return {"node_scores": source.index_select(1, sweep.node_column), "slot_weight": slot_weight}
        table = source.index_select(1, sweep.column.reshape(-1)).view(self.num_frames, sweep.width, sweep.num_nodes)
        if slot_weight is not None:
            table += slot_weight.view(sweep.width, sweep.num_nodes)
        return {"slot_scores": table}

    def inject(self, sweep: _Sweep, emissions: torch.Tensor, both: bool) -> dict:
        """{step: (positions, values)}: the start nodes (0) at step 0; with `both`, the backward
        copies of each utterance's accept nodes at step T - length: beta = 0, plus in node form
        the emission of the accept node's label at the utterance's last frame."""
        zeros = emissions.new_zeros(self.start.numel())
        rows = {0: [(sweep.position[self.start], zeros)]}
        if both:
            lengths = self.host_lengths[self.batch.accept_graph]
            values = emissions.new_zeros(lengths.size)
            if self.node_form:
                pair = self.node_pair_np[self.batch.accept]
                ok = np.flatnonzero((pair >= 0) & (lengths > 0))
                frame, column = self.batch.tensor(lengths[ok] - 1), self.batch.tensor(pair[ok])
                values.index_copy_(0, self.batch.tensor(ok), emissions[frame, column])
            positions = sweep.position[self.accept + self.num_nodes]
            steps = self.num_frames - lengths
            for step in np.unique(steps).tolist():
                pick = self.batch.tensor(np.flatnonzero(steps == step))
                rows.setdefault(step, []).append((positions.index_select(0, pick), values.index_select(0, pick)))
        return {step: (torch.cat([p for p, _ in parts]), torch.cat([v for _, v in parts]))
                for step, parts in rows.items()}

    def run(self, log_probs, weight, semiring: str, both: bool = False, keep_choices: bool = False):
        """The sweep, its distances, the Viterbi choices (or None) and the emission `source`."""
        sweep = self.sweep(both)
        source, emissions = self.source(log_probs, both)
        dist, choices = sweep.run(self.num_frames, self.inject(sweep, emissions, both), semiring, source,
                                  keep_choices=keep_choices, **self.scores(sweep, source, weight))
        return sweep, dist, choices, source

    def totals(self, sweep: _Sweep, dist: torch.Tensor, semiring: str) -> torch.Tensor:
        """Per graph: semiring sum over accept nodes of alpha after the utterance's last frame."""
        at_end = dist[self.lengths.index_select(0, self.accept_graph), sweep.position[self.accept]]
        return segment_reduce(at_end, self.accept_graph, self.batch.size, semiring)

    def posterior_gradients(self, sweep, dist, source, weight, totals, grad_totals, arcs_needed: bool):
        """Gradients of sum_b grad_totals[b] * totals[b] (log semiring) with respect to the
        pairs' emissions [T, P] and, with `arcs_needed`, the arc weights [E], from the distances
        of `sweep(both=True)` and its `source` (the emissions are its first P columns): alpha(t)
        is row t of the forward half, beta(t + 1) (slot form) or beta(t + 1) + emission of frame
        t (node form) is row T - 1 - t of the backward half. Node occupancies give the emission
        gradient of arcs into `node_set` nodes (all arcs in node form); arc posteriors the rest,
        and the weight gradient."""
        n = self.num_nodes
        forward_pos, backward_pos = sweep.position[:n], sweep.position[n:2 * n]
        # Impossible utterances (total -inf) have no paths: dividing by +inf gives 0, not NaN.
        z = torch.where(torch.isfinite(totals), totals, torch.full_like(totals, float("inf")))
        grad_emissions = source.new_zeros(self.num_frames, self.num_pairs)
        node_path = self.node_form or not arcs_needed
        if node_path and self.node_set.numel():
            nodes, pair, h = self.node_set, self.node_pair, self.node_set.numel()
            graph = self.node_graph.index_select(0, nodes)
            gathered = dist.index_select(1, torch.cat([forward_pos.index_select(0, nodes),
                                                       backward_pos.index_select(0, nodes)]))
            occupancy = gathered[:-1, h:].flip(0)  # beta(t + 1) ...
            occupancy += gathered[1:, :h]  # ... + alpha(t + 1)
            if self.node_form:  # both halves hold the emission of frame t
                occupancy -= source.index_select(1, pair)
            _scaled_exp_(occupancy, z.index_select(0, graph), grad_totals.index_select(0, graph))
            grad_emissions.index_add_(1, pair, occupancy)
        arcs = torch.arange(self.batch.num_arcs, device=dist.device) if arcs_needed else self.other_arcs
        grad_weight = weight.new_zeros(self.batch.num_arcs) if arcs_needed else None
        if arcs.numel():
            graph, pair, h = self.arc_graph.index_select(0, arcs), self.pair_of_arc.index_select(0, arcs), arcs.numel()
            ends = torch.cat([forward_pos.index_select(0, self.src.index_select(0, arcs)),
                              backward_pos.index_select(0, self.dst.index_select(0, arcs))])
            gathered = dist[:-1].index_select(1, ends)
            post = gathered[:, h:].flip(0)  # beta(t + 1) ...
            post += gathered[:, :h]  # ... + alpha(t)
            if not self.node_form:  # node form: already in the backward half at the arc's destination
                post += source.index_select(1, pair)
            offset = z.index_select(0, graph) - weight.index_select(0, arcs)
            _scaled_exp_(post, offset, grad_totals.index_select(0, graph))
            if not (node_path and arcs_needed):
                grad_emissions.index_add_(1, pair, post)
            if arcs_needed:
                grad_weight = post.sum(dim=0)
        return grad_emissions, grad_weight

    def best_arcs(self, sweep: _Sweep, dist, choices, totals) -> torch.Tensor:
        """[B, T] arc taken at each frame on each graph's best path (-1 past its end or without a path)."""
        size, device = self.batch.size, dist.device
        accept_pos = sweep.position[self.accept]
        at_end = dist[self.lengths.index_select(0, self.accept_graph), accept_pos]
        # First accept node reaching the best score, per graph (none where no path is finite).
        first = segment_argmax(at_end, self.accept_graph, size)
        found = (first >= 0) & torch.isfinite(totals)
        node = torch.where(found, accept_pos[first.clamp(min=0)], 0) if self.accept.numel() else torch.zeros_like(first)
        path = torch.full((size, self.num_frames), -1, dtype=torch.long, device=device)
        for t in range(self.num_frames - 1, -1, -1):
            live = found & (self.lengths > t)
            slot = choices[t].index_select(0, node)
            path[:, t] = torch.where(live, sweep.arcs[slot, node], path[:, t])
            node = torch.where(live, sweep.far[slot, node], node)
        return path

    def scatter_emissions(self, grad_emissions: torch.Tensor, shape) -> torch.Tensor:
        """[T, P] pair gradients back onto the [B, T, V] emissions."""
        grad = grad_emissions.new_zeros(shape.numel())
        grad.index_add_(0, self.emission_index.reshape(-1), grad_emissions.reshape(-1))
        return grad.view(shape)


class _DenseScore(torch.autograd.Function):
    """Per-graph score of the emissions; backward gives posteriors w.r.t. emissions and weights."""

    @staticmethod
    def forward(ctx, log_probs, weight, layout: _Layout, semiring: str):
        needs_grad = any(ctx.needs_input_grad[:2])
        both = semiring == LOG and needs_grad  # run the backward sweep now, in the same loop
        keep_choices = semiring == TROPICAL and needs_grad
        sweep, dist, choices, source = layout.run(log_probs, weight, semiring, both, keep_choices)
        totals = layout.totals(sweep, dist, semiring)
        ctx.layout, ctx.semiring, ctx.sweep, ctx.shape = layout, semiring, sweep, log_probs.shape
        ctx.save_for_backward(source, weight, dist, totals, choices if choices is not None else totals)
        return totals

    @staticmethod
    def backward(ctx, grad_totals):
        source, weight, dist, totals, choices = ctx.saved_tensors
        layout, sweep = ctx.layout, ctx.sweep
        want_emissions, want_weight = ctx.needs_input_grad[:2]
        if ctx.semiring == LOG:
            grad_emissions, grad_weight = layout.posterior_gradients(
                sweep, dist, source, weight, totals, grad_totals, arcs_needed=want_weight)
        else:
            arcs = layout.best_arcs(sweep, dist, choices, totals)
            graph, frame = (arcs >= 0).nonzero(as_tuple=True)
            taken, scale = arcs[graph, frame], grad_totals.index_select(0, graph)
            grad_emissions = source.new_zeros(layout.num_frames, layout.num_pairs)
            grad_emissions.index_put_((frame, layout.pair_of_arc.index_select(0, taken)), scale, accumulate=True)
            grad_weight = weight.new_zeros(weight.shape).index_add_(0, taken, scale)
        grad_log_probs = layout.scatter_emissions(grad_emissions, ctx.shape) if want_emissions else None
        return grad_log_probs, grad_weight if want_weight else None, None, None


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
    batch = Batch(items)
    if (batch.ilabel == EPSILON).any():  # checked on the batch's host arrays: no per-graph tensor ops
        from .epsilon import remove_epsilon
        from .rational import project_input

        # Only input labels meet the emissions; a leftover epsilon arc (the weight of an
        # empty sequence) can never consume a frame, so it is dropped by the sweep.
        batch = Batch(remove_epsilon(project_input(items), semiring))
    return batch, lengths


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
    indices refer to the given graphs. Not differentiable: computed without gradients."""
    batch, lengths = _prepare(log_probs, lengths, graphs)
    if (batch.ilabel == EPSILON).any():
        raise ValueError("align_dense: graphs must have no epsilon input labels (arc indices refer to them)")
    layout = _Layout(batch, log_probs, lengths)
    with torch.no_grad():
        weight = batch.weight.detach().to(log_probs.dtype)
        sweep, dist, choices, _ = layout.run(log_probs.detach(), weight, TROPICAL, keep_choices=True)
        totals = layout.totals(sweep, dist, TROPICAL)
        arcs = layout.best_arcs(sweep, dist, choices, totals)
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
