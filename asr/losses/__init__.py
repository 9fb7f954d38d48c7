"""Sequence losses as torch.nn.Modules over `graphs`: each is -log of the total weight of
the emission paths its graph allows (optionally minus a denominator graph's)."""

from .asg import ASGLoss
from .crctc import ConsistencyRegularizedCTC
from .ctc import CTCLoss
from .graph_loss import GraphLoss
from .mmi import MMILoss, bigram_log_probs
from .transducer import TransducerLoss

__all__ = ["ASGLoss", "CTCLoss", "ConsistencyRegularizedCTC", "GraphLoss", "MMILoss", "TransducerLoss",
           "bigram_log_probs", "make_loss", "TRAINING_LOSSES"]

# Losses a recognizer can be trained with by name (recipes' "loss", `asr train`'s config).
TRAINING_LOSSES = {"ctc": CTCLoss, "crctc": ConsistencyRegularizedCTC}


def make_loss(spec: str | dict):
    """The training loss `spec` names: "ctc", "crctc", or {"name": ..., **options} with the
    loss's constructor options (e.g. {"name": "crctc", "scale": 0.2})."""
    options = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = options.pop("name", None)
    if name not in TRAINING_LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(TRAINING_LOSSES)}")
    try:
        return TRAINING_LOSSES[name](**options)
    except TypeError as error:
        raise ValueError(f"loss {name!r}: bad options {options} ({error})") from None
