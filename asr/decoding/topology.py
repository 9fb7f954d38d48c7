"""How a model's frame labels spell tokens: the H of its HLG, its greedy decoding and the
token runs of a frame path. A model trained with CTC reads frames the CTC way (a blank
between tokens, repeats merged); one trained with ASG has no blank, so its frames say the
token on every frame and a repeated token is framed with the repetition label.

A graph folder records its topology in topology.json (no file: CTC), so a model directory
decodes the way its loss trained it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import graphs
from graphs.io import write_atomic

from .hypothesis import token_runs

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
        """H: frame labels in, tokens out."""
        return graphs.ctc_topology(num_tokens, self.blank, modified=self.modified)

    def greedy(self, log_probs: torch.Tensor, lengths) -> list[list[int]]:
        """Best label per frame, repeats merged and blanks dropped, for each utterance."""
        best, starts = _merged_runs(log_probs, lengths)
        keep = starts & (best != self.blank)
        return [row.tolist() for row in torch.split(best[keep], keep.sum(dim=1).tolist())]

    def token_runs(self, labels: Sequence[int]) -> list[tuple[int, int, int]]:
        """(token, first frame, last frame) of each token on a frame path."""
        return token_runs(labels, self.blank)

    def to_dict(self) -> dict:
        return {"name": self.name, "modified": self.modified}


@dataclasses.dataclass
class ASGTopology:
    """ASG (wav2letter): every frame is a token (no blank), a run of one label is one token,
    and label `repeat` (0, the blank's column) stands for the token before it, so "LL" is
    framed L <rep>. `transitions` [V + 1, V] score each label after another (row V: the
    first), as ASG learned them; H carries them. `silence` is the label whose long runs are
    pauses (a character model's word separator; None: no label is); H reads it as no token."""

    transitions: torch.Tensor | None = None
    repeat: int = 0
    silence: int | None = None
    name = "asg"

    @property
    def blank(self) -> int:
        """No label is silence between tokens: EPSILON never occurs on a frame."""
        return graphs.EPSILON

    def graph(self, num_tokens: int) -> graphs.Graph:
        """H: frame labels in, tokens out, so words are spelled with their plain tokens. Node 0
        is the start, node 1 + i "the last frame was token i" and node 1 + V + i "the last
        frame was the repetition label after token i". A run of one label outputs its token
        on its first frame (the repetition label outputs the token before it), except the
        silence label, which outputs nothing (pauses, and the word separator a lexicon may
        leave out); a first frame weighs transitions[V, label], every later frame
        transitions[previous label, label]."""
        r = self.repeat
        tokens = np.array([t for t in range(num_tokens) if t != r], dtype=np.int64)
        state, rep_state = 1 + tokens, 1 + num_tokens + tokens
        src_t, dst_t = np.meshgrid(tokens, tokens, indexing="ij")  # token -> token, self-loops included
        pairs_src, pairs_dst = src_t.reshape(-1), dst_t.reshape(-1)
        src = np.concatenate([np.zeros_like(tokens), 1 + pairs_src, state, rep_state, rep_state.repeat(tokens.size)])
        dst = np.concatenate([state, 1 + pairs_dst, rep_state, rep_state, np.tile(state, tokens.size)])
        ilabel = np.concatenate([tokens, pairs_dst, np.full_like(tokens, r), np.full_like(tokens, r),
                                 np.tile(tokens, tokens.size)])
        olabel = np.concatenate([tokens, np.where(pairs_src == pairs_dst, graphs.EPSILON, pairs_dst), tokens,
                                 np.full_like(tokens, graphs.EPSILON), np.tile(tokens, tokens.size)])
        previous = np.concatenate([np.full_like(tokens, num_tokens), pairs_src, tokens, np.full_like(tokens, r),
                                   np.full_like(pairs_src, r)])
        if self.silence is not None:  # a pause is no token of a word
            olabel[olabel == self.silence] = graphs.EPSILON
        if self.transitions is None:
            weight = torch.zeros(src.size)
        else:
            weight = self.transitions.detach().float().reshape(-1)[torch.from_numpy(previous * num_tokens + ilabel)]
        return graphs.Graph.from_arrays(src, dst, ilabel, olabel, weight=weight, start=[0],
                                        accept=np.arange(1 + 2 * num_tokens), num_nodes=1 + 2 * num_tokens)

    def frame_labels(self, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Padded token targets [B, U] as ASG's alignment graphs read them: inside a run of one
        token, every second one becomes the repetition label ("L L L" -> L <rep> L), so no
        label follows itself. Vectorized; padding is left as it is."""
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

    def token_runs(self, labels: Sequence[int]) -> list[tuple[int, int, int]]:
        """(token, first frame, last frame) of each token on a frame path: a run of the
        repetition label is the token before it again."""
        result: list[tuple[int, int, int]] = []
        for token, first, last in token_runs(labels, graphs.EPSILON):
            if token == self.repeat and not result:
                continue
            result.append((result[-1][0] if token == self.repeat else token, first, last))
        return result

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
