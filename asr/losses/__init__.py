"""Sequence losses as torch.nn.Modules over `graphs`: each is -log of the total weight of
the emission paths its graph allows (optionally minus a denominator graph's)."""

from .asg import ASGLoss
from .ctc import CTCLoss
from .graph_loss import GraphLoss
from .mmi import MMILoss, bigram_log_probs
from .transducer import TransducerLoss

__all__ = ["ASGLoss", "CTCLoss", "GraphLoss", "MMILoss", "TransducerLoss", "bigram_log_probs"]
