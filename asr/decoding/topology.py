"""How a model's frame labels spell tokens: the H of its HLG, its greedy decoding and the
token sequences its graphs read. A model trained with CTC reads frames the CTC way (a blank
between tokens, repeats merged); one trained with ASG has no blank, so its frames say the
token on every frame and a repeated token is written with the repetition label.

A graph folder records its topology in topology.json (no file: CTC), so a model directory
decodes the way its loss trained it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import torch

import graphs
from graphs.io import write_atomic

TOPOLOGY_FILE = "topology.json"


def _merged_runs(log_probs: torch.Tensor, lengths) -> tuple[torch.Tensor, torch.Tensor]:
    """The best label of every frame [B, T], and which frames start a run of one label inside
    their utterance."""
    best = log_probs.argmax(-1)
    lengths = torch.as_tensor(lengths, device=best.device)
    frames = torch.arange(best.shape[1], device=best.device)
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    return best, (best != previous) & (frames.unsqueeze(0) < lengths.unsqueeze(1))


@dataclasses.dataclass
class CTCTopology:
    """CTC: label `blank` (0) is no token, a token lasts one or more frames, and the same
    token twice needs a blank between. `modified` is k2's O(V) variant of H (a token may
    follow itself without a blank: for large token sets)."""

    blank: int = 0
    modified: bool = False
    name = "ctc"

    @property
    def silence(self) -> int:
        """The label whose long runs are pauses (for segmenting long recordings)."""
        return self.blank

    def graph(self, num_tokens: int) -> graphs.Graph:
        return graphs.ctc_topology(num_tokens, self.blank, modified=self.modified)

    def spell(self, tokens: Sequence[int]) -> list[int]:
        """A token sequence as the graphs read it: unchanged for CTC."""
        return list(tokens)

    def greedy(self, log_probs: torch.Tensor, lengths) -> list[list[int]]:
        """Best label per frame, repeats merged and blanks dropped, for each utterance."""
        best, starts = _merged_runs(log_probs, lengths)
        keep = starts & (best != self.blank)
        return [row.tolist() for row in torch.split(best[keep], keep.sum(dim=1).tolist())]

    def to_dict(self) -> dict:
        return {"name": self.name, "modified": self.modified}


@dataclasses.dataclass
class ASGTopology:
    """ASG (wav2letter): every frame is a token (no blank), a run of one label is one token,
    and label `repeat` (0, the blank's column) stands for the token before it, so "LL" is
    read as L <rep>. `transitions` [V + 1, V] score each label after another (row V: the first),
    as ASG learned them; H carries them. Pauses are runs of the word separator `silence`."""

    transitions: torch.Tensor | None = None
    repeat: int = 0
    silence: int = 1
    name = "asg"

    def graph(self, num_tokens: int) -> graphs.Graph:
        """Frames in, tokens out: the state is the last label; the same label again stays
        (no output), another label is output and becomes the state."""
        transitions = None if self.transitions is None else self.transitions.detach().float()
        every = graphs.asg_transition_graph(num_tokens, transitions)
        stays = (every.src == every.dst) & (every.src != 0)  # node 1 + i loops on label i
        return graphs.Graph.from_arrays(every.src, every.dst, every.ilabel,
                                        every.olabel.masked_fill(stays, graphs.EPSILON), weight=every.weight.detach(),
                                        start=every.start, accept=every.accept, num_nodes=every.num_nodes)

    def spell(self, tokens: Sequence[int]) -> list[int]:
        """`tokens` as ASG frames say them: inside a run of one token, every second one is the
        repetition label ("L L L" -> L <rep> L), so no label follows itself."""
        if not len(tokens):
            return []
        return self.spell_batch(torch.as_tensor([list(tokens)]), torch.tensor([len(tokens)]))[0].tolist()

    def spell_batch(self, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`spell` on padded targets [B, U] (vectorized; padding is left as it is)."""
        steps = torch.arange(targets.shape[1], device=targets.device).expand_as(targets)
        same = torch.zeros_like(targets, dtype=torch.bool)
        same[:, 1:] = targets[:, 1:] == targets[:, :-1]
        run_start = torch.cummax(torch.where(same, 0, steps), dim=1).values
        repeated = ((steps - run_start) % 2 == 1) & (steps < lengths.to(targets.device).unsqueeze(1))
        return targets.masked_fill(repeated, self.repeat)

    def greedy(self, log_probs: torch.Tensor, lengths) -> list[list[int]]:
        """Best label per frame, runs merged, each repetition label replaced by the token before
        it (a repetition label that starts an utterance is dropped)."""
        best, starts = _merged_runs(log_probs, lengths)
        counts = starts.sum(dim=1)
        runs = best[starts]  # every utterance's runs, one after another
        owner = torch.repeat_interleave(torch.arange(best.shape[0], device=best.device), counts)
        previous = torch.cat([runs.new_full((1,), self.repeat), runs[:-1]])
        previous[(torch.cumsum(counts, 0) - counts)[counts > 0]] = self.repeat  # no token before a first run
        tokens = torch.where(runs == self.repeat, previous, runs)
        keep = tokens != self.repeat
        kept = torch.bincount(owner[keep], minlength=best.shape[0])
        return [row.tolist() for row in torch.split(tokens[keep], kept.tolist())]

    @property
    def blank(self) -> int:
        """No label is silence between tokens: EPSILON never occurs on a frame."""
        return graphs.EPSILON

    def to_dict(self) -> dict:
        transitions = None if self.transitions is None else self.transitions.detach().cpu().tolist()
        return {"name": self.name, "repeat": self.repeat, "silence": self.silence, "transitions": transitions}


Topology = CTCTopology | ASGTopology


def topology_from_dict(options: dict, where: str) -> Topology:
    """The topology `to_dict` wrote; a bad entry is a ValueError naming `where`."""
    options = dict(options)
    name = options.pop("name", None)
    try:
        if name == CTCTopology.name:
            return CTCTopology(**options)
        if name == ASGTopology.name:
            transitions = options.pop("transitions", None)
            return ASGTopology(None if transitions is None else torch.tensor(transitions, dtype=torch.float32),
                               **options)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from None
    raise ValueError(f"{where}: unknown topology {name!r} (ctc or asg)")


def save_topology(topology: Topology, folder: Path) -> None:
    """topology.json in `folder`, for any topology other than plain CTC (which needs no file)."""
    if not (isinstance(topology, CTCTopology) and topology == CTCTopology()):
        write_atomic(folder / TOPOLOGY_FILE, json.dumps(topology.to_dict()) + "\n")


def load_topology(folder: Path) -> Topology:
    path = folder / TOPOLOGY_FILE
    if not path.is_file():
        return CTCTopology()
    try:
        options = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return topology_from_dict(options, str(path))
