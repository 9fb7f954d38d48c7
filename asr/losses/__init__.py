"""Sequence losses as torch.nn.Modules over `graphs`: each is -log of the total weight of
the emission paths its graph allows (optionally minus a denominator graph's)."""

import importlib
import importlib.util
from pathlib import Path
from typing import Sequence

import torch

from ..decoding.topology import CTCTopology, Topology
from .asg import ASGLoss
from .crctc import ConsistencyRegularizedCTC
from .ctc import CTCLoss
from .graph_loss import GraphLoss
from .mmi import MMILoss, bigram_log_probs
from .transducer import TransducerLoss
from .wordpiece import WordPieceLoss

__all__ = ["ASGLoss", "CTCLoss", "ConsistencyRegularizedCTC", "GraphLoss", "MMILoss", "TransducerLoss",
           "WordPieceLoss", "bigram_log_probs", "check_loss", "loss_topology", "make_loss", "TRAINING_LOSSES"]


def _mmi(tokenizer, transcripts, **options) -> MMILoss:
    """MMI whose denominator is a token bigram of the training transcripts (LF-MMI style)."""
    targets = [tokenizer.encode(text) for text in transcripts]
    return MMILoss(tokenizer.vocab_size, transitions=bigram_log_probs(targets, tokenizer.vocab_size), **options)


def _asg(tokenizer, transcripts, **options) -> ASGLoss:
    """ASG with learned transitions; a repeated token is framed with label 0 (the blank's
    column, which ASG has no other use for), so the model and its tokens stay those of CTC.
    A character model's word separator is its silence: between words and, surrounding each
    transcript, before and after the speech (as wav2letter trains letters)."""
    char = tokenizer.kind == "char"
    return ASGLoss(tokenizer.vocab_size, **{"repeat": 0, "silence": 1 if char else None, "surround": char,
                                            **options})


def loss_topology(loss) -> Topology:
    """How a model trained with `loss` reads its frames: the loss's `topology` attribute (ASG's),
    else CTC's (every other built-in loss; a user's loss may define `topology` too)."""
    return getattr(loss, "topology", None) or CTCTopology()


# Losses a recognizer can be trained with by name (recipes' "loss", `asr train --loss`): each is
# a factory(tokenizer, transcripts, **options) -> loss module, as a user's own factory is.
TRAINING_LOSSES = {
    "ctc": lambda tokenizer, transcripts, **options: CTCLoss(**options),
    "crctc": lambda tokenizer, transcripts, **options: ConsistencyRegularizedCTC(**options),
    "mmi": _mmi,
    "asg": _asg,
    "wordpiece": lambda tokenizer, transcripts, **options: WordPieceLoss(tokenizer, **options),
}


def _parse(spec: str | dict) -> tuple[str, dict]:
    options = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"a loss is a name or {{\"name\": ..., options}}, got {spec!r}")
    return name, options


def _factory(name: str):
    """The factory `name` stands for: a built-in loss, `module.path:function` or
    `path/to/file.py:function` (a user's own loss, imported here)."""
    if name in TRAINING_LOSSES:
        return TRAINING_LOSSES[name]
    if ":" not in name:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(TRAINING_LOSSES)}, or give your own as "
                         "module.path:factory or path/to/file.py:factory")
    where, function = name.rsplit(":", 1)
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            if spec is None or not Path(where).is_file():
                raise ImportError(f"no such file {where}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as error:
        raise ValueError(f"loss {name!r}: cannot import {where} ({error})") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"loss {name!r}: {where} has no function {function!r}")
    return factory


def check_loss(spec: str | dict) -> None:
    """Fail now (ValueError naming it) on a loss that `make_loss` could not find (or, for the
    losses that need no tokenizer, could not make with these options)."""
    name, _ = _parse(spec)
    _factory(name)
    if name in ("ctc", "crctc"):
        make_loss(spec)


def make_loss(spec: str | dict, tokenizer=None, transcripts: Sequence[str] = ()) -> torch.nn.Module:
    """The training loss `spec` names: "ctc", "crctc", "mmi", "asg", "wordpiece", a user's `module:factory` or
    `file.py:factory`, or {"name": ..., **options} with options for it (e.g. {"name": "crctc",
    "scale": 0.2}). The factory is called as factory(tokenizer=..., transcripts=..., **options)
    with the model's tokenizer and the training transcripts, and returns the loss module, which
    is called as loss(log_probs [B, T, V], targets, input_lengths, target_lengths)."""
    name, options = _parse(spec)
    factory = _factory(name)
    if name not in ("ctc", "crctc") and tokenizer is None:
        raise ValueError(f"loss {name!r} is made from the tokenizer and transcripts: give them")
    try:
        loss = factory(tokenizer=tokenizer, transcripts=list(transcripts), **options)
    except TypeError as error:
        raise ValueError(f"loss {name!r}: bad options {options} ({error})") from None
    if not callable(loss):
        raise ValueError(f"loss {name!r}: its factory returned {type(loss).__name__}, not a loss module")
    return loss
