"""A loss from any user-defined graph: the model learns to put its mass on that graph's paths."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

import graphs

from ._reduce import check_reduction, reduce_losses, zero_infinite

GraphMaker = Callable[[Any], "graphs.Graph | Sequence[graphs.Graph]"]


class GraphLoss(torch.nn.Module):
    """-log of the emission paths a target graph allows, optionally normalized by a denominator.

    `make_graphs(targets)` receives the whole batch of targets (any objects) and returns one
    graph per utterance (or one graph for all). `denominator` is a fixed Graph, or a function
    of the targets like `make_graphs`; with it, the loss is denominator score - numerator score
    (as in MMI). Called as `loss(log_probs[B, T, V], targets, input_lengths)`, or as the
    trainer calls every loss, `loss(log_probs, targets [B, U], input_lengths, target_lengths)`:
    then `make_graphs` receives each utterance's token ids as a list, and 'mean' divides each
    loss by its target length before averaging, as CTCLoss does. Graph weights that require
    grad are trained too. `zero_infinity` zeroes the loss of an utterance the graph has no path
    for (e.g. too few frames for what the graph demands), as `CTCLoss` does: it is then skipped.
    """

    def __init__(self, make_graphs: GraphMaker, denominator: "graphs.Graph | GraphMaker | None" = None,
                 reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        self.make_graphs = make_graphs
        self.denominator = denominator
        self.reduction = check_reduction(reduction)
        self.zero_infinity = zero_infinity

    def forward(self, log_probs: torch.Tensor, targets: Any, input_lengths, target_lengths=None) -> torch.Tensor:
        if target_lengths is not None:
            target_lengths = torch.as_tensor(target_lengths).reshape(-1).long()
            if isinstance(targets, torch.Tensor):
                targets = [row[:n].tolist() for row, n in zip(targets.cpu(), target_lengths.tolist())]
        losses = -graphs.intersect_dense(log_probs, input_lengths, self.make_graphs(targets))
        if self.denominator is not None:
            denominator = self.denominator if isinstance(self.denominator, graphs.Graph) else self.denominator(targets)
            losses = losses + graphs.intersect_dense(log_probs, input_lengths, denominator)
        if self.zero_infinity:
            losses = zero_infinite(losses)
        if target_lengths is None:
            return reduce_losses(losses, self.reduction)
        return reduce_losses(losses, self.reduction, target_lengths.to(losses.device))
