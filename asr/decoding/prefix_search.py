"""Lexicon-free CTC prefix beam search, batched over utterances and vectorized over hypotheses.

Each hypothesis is a token prefix with two scores: the log-probability of all alignments of
the frames so far that collapse to it and end in a blank (pb), or in its last token (pnb).
A frame either keeps a prefix (blank, or its last token repeated) or extends it by a token
(after a blank when the token repeats the last one). Extensions that spell a prefix already
in the beam merge into it (log-add), so a prefix's score sums over its alignments, which
makes this better than greedy decoding. A prefix is identified by a 64-bit polynomial hash
of its tokens (so the same prefix reached twice merges, whatever its history) and spelled
from a node of a trie shared by the batch (parent node, token). The `beam` best prefixes
per utterance survive each frame; only the `beam` best extensions per utterance are
considered.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import graphs

from .context import ContextGraph

NEG_INF = float("-inf")


@dataclass
class PrefixSearchResult:
    """Best token sequence of each utterance and its log-probability (summed over alignments)."""

    tokens: list[list[int]]
    score: torch.Tensor


@torch.no_grad()
def prefix_beam_search(log_probs: torch.Tensor, lengths, beam: int = 10, blank: int = 0,
                       context: ContextGraph | None = None) -> PrefixSearchResult:
    """CTC prefix beam search over emissions [B, T, V] (utterance b uses lengths[b] frames),
    biased toward the phrases of `context` when given."""
    search = PrefixSearch(log_probs.shape[0], beam, blank, log_probs.device, context)
    search.advance(log_probs, lengths)
    return search.finish()


class PrefixSearch:
    """A prefix beam search over `size` utterances fed chunk by chunk: `advance` with each
    chunk of emissions, `finish` for the result (streaming, or emissions too long to hold at
    once); `prefix_beam_search` is the one-call form."""

    def __init__(self, size: int, beam: int = 10, blank: int = 0, device: str | torch.device = "cpu",
                 context: ContextGraph | None = None):
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        self.size, self.beam, self.blank, self.context = size, beam, blank, context
        # Beam state [B, K]: prefix hash (0: empty), trie node (0: empty), last token (-1: none), pb, pnb.
        self.key = torch.zeros(size, beam, dtype=torch.long, device=device)
        self.node = torch.zeros(size, beam, dtype=torch.long, device=device)
        self.last = torch.full((size, beam), -1, dtype=torch.long, device=device)
        self.pb = torch.full((size, beam), NEG_INF, device=device)
        self.pb[:, 0] = 0.0
        self.pnb = torch.full((size, beam), NEG_INF, device=device)
        # With a context graph: each prefix's context state and the bonus its tokens earned so far
        # (kept apart from pb/pnb, which stay sums over alignments; the beam ranks by both).
        self.state = torch.zeros(size, beam, dtype=torch.long, device=device)
        self.bonus = torch.zeros(size, beam, device=device)
        self.trie = _Trie(device)

    @torch.no_grad()
    def advance(self, log_probs: torch.Tensor, lengths) -> None:
        """The next frames of each utterance: emissions [B, T, V], of which utterance b has
        lengths[b] (0 when it has nothing new)."""
        size, frames, vocab = log_probs.shape
        device, beam, blank = log_probs.device, self.beam, self.blank
        lengths = torch.as_tensor(lengths, device=device).reshape(-1).long()
        if size != self.size or lengths.numel() != size:
            raise ValueError(f"prefix beam search: emissions for {size} utterances and {lengths.numel()} lengths, "
                             f"for a search of {self.size}")
        log_probs = log_probs.float()
        key, node, last, pb, pnb, state, bonus = self.key, self.node, self.last, self.pb, self.pnb, self.state, self.bonus
        utt = torch.arange(size, device=device)
        tokens = torch.arange(vocab, device=device)
        for t in range(frames):
            frame = log_probs[:, t]  # [B, V]
            total = torch.logaddexp(pb, pnb)
            # Staying on the prefix: a blank, or the last token again.
            stay_b = total + frame[:, blank, None]
            stay_nb = torch.where(last >= 0, pnb + frame.gather(1, last.clamp(min=0)), NEG_INF)
            # Extending by token c: after a blank when c repeats the last token.
            extend = torch.where(tokens[None, None, :] == last[:, :, None], pb[:, :, None], total[:, :, None])
            extend = (extend + frame[:, None, :]).masked_fill(tokens == blank, NEG_INF)  # [B, K, V]
            if self.context is None:
                best_ext, flat = extend.reshape(size, -1).topk(beam, dim=1)
                child_bonus, child_state = torch.zeros_like(best_ext), torch.zeros_like(flat)
            else:
                gained, moved = self._context_steps(state, vocab)  # [B, K, V] each
                best, flat = (extend + bonus[:, :, None] + gained).reshape(size, -1).topk(beam, dim=1)
                best_ext = extend.reshape(size, -1).gather(1, flat)
                child_bonus = best - best_ext  # the parent's bonus plus this token's
                child_state = moved.reshape(size, -1).gather(1, flat)
            hyp, token = flat // vocab, flat % vocab
            child_key = key.gather(1, hyp) * _HASH_PRIME + token + 1  # wraps around: a 64-bit hash
            child_node = self.trie.add(node.gather(1, hyp).reshape(-1), token.reshape(-1)).reshape(size, beam)
            # K stays + K extensions per utterance; copies of one prefix are log-added into the first
            # (copies share their context state and bonus: both follow from the tokens).
            keys = torch.cat([key, child_key], dim=1)
            cand_b, cand_nb = _merge(utt, keys, torch.cat([stay_b, torch.full_like(best_ext, NEG_INF)], dim=1),
                                     torch.cat([stay_nb, best_ext], dim=1))
            cand_bonus = torch.cat([bonus, child_bonus.nan_to_num(0.0)], dim=1)
            order = (torch.logaddexp(cand_b, cand_nb) + cand_bonus).topk(beam, dim=1).indices
            active = (t < lengths)[:, None]
            key = torch.where(active, keys.gather(1, order), key)
            node = torch.where(active, torch.cat([node, child_node], dim=1).gather(1, order), node)
            last = torch.where(active, torch.cat([last, token], dim=1).gather(1, order), last)
            pb = torch.where(active, cand_b.gather(1, order), pb)
            pnb = torch.where(active, cand_nb.gather(1, order), pnb)
            state = torch.where(active, torch.cat([state, child_state], dim=1).gather(1, order), state)
            bonus = torch.where(active, cand_bonus.gather(1, order), bonus)
        self.key, self.node, self.last, self.pb, self.pnb, self.state, self.bonus = key, node, last, pb, pnb, state, bonus

    def _context_steps(self, state: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The context bonus of extending each prefix by each token, and the state it leads to
        ([B, K, V])."""
        size, beam = state.shape
        states = state[:, :, None].expand(size, beam, vocab).reshape(-1).cpu().numpy()
        tokens = torch.arange(vocab).repeat(size * beam).numpy()
        gained, moved = self.context.step(states, tokens)
        as_tensor = lambda a, dtype: torch.from_numpy(a).to(state.device, dtype).reshape(size, beam, vocab)  # noqa: E731
        return as_tensor(gained, torch.float32), as_tensor(moved, torch.long)

    def finish(self) -> PrefixSearchResult:
        """Each utterance's best prefix over all the frames it was given (with a context graph:
        ranked with its bonus, an unfinished phrase's taken back; the score is without it)."""
        score = torch.logaddexp(self.pb, self.pnb)
        ranked = score
        if self.context is not None:
            unfinished = torch.from_numpy(self.context.finalize(self.state.reshape(-1).cpu().numpy()))
            ranked = score + self.bonus + unfinished.to(score.device, torch.float32).reshape(score.shape)
        best = ranked.argmax(dim=1)
        return PrefixSearchResult(self.trie.spell(self.node.gather(1, best[:, None]).flatten()),
                                  score.gather(1, best[:, None]).flatten().cpu())


_HASH_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime


def _merge(utt, keys, cand_b, cand_nb):
    """Log-add candidates of one utterance with the same prefix hash into the first of them;
    every other copy gets -inf."""
    size, width = keys.shape
    pair = torch.stack([utt[:, None].expand(size, width).reshape(-1), keys.reshape(-1)], dim=1)
    unique, group = torch.unique(pair, dim=0, return_inverse=True)
    groups = unique.shape[0]
    sum_b = graphs.segment_logsumexp(cand_b.reshape(-1), group, groups)
    sum_nb = graphs.segment_logsumexp(cand_nb.reshape(-1), group, groups)
    position = torch.arange(group.numel(), device=keys.device)
    first = graphs.segment_argmax(torch.zeros(group.numel(), device=keys.device), group, groups)  # all tie: the first
    keep = first[group] == position
    merged_b = torch.where(keep, sum_b[group], NEG_INF).reshape(size, width)
    merged_nb = torch.where(keep, sum_nb[group], NEG_INF).reshape(size, width)
    return merged_b, merged_nb


class _Trie:
    """Prefixes as (parent node, token) nodes, for spelling the result; node 0 is the empty prefix."""

    def __init__(self, device):
        self.parent = [torch.tensor([-1], device=device)]
        self.token = [torch.tensor([-1], device=device)]
        self.size = 1

    def add(self, parent: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """New nodes spelling each parent's prefix plus its token; returns their ids."""
        ids = self.size + torch.arange(parent.numel(), device=parent.device)
        self.parent.append(parent)
        self.token.append(token)
        self.size += parent.numel()
        return ids

    def spell(self, ids: torch.Tensor) -> list[list[int]]:
        """Token sequences of trie nodes (all walked up together)."""
        parent, token = torch.cat(self.parent).cpu(), torch.cat(self.token).cpu()
        ids = ids.cpu()
        steps = []
        while bool((ids > 0).any()):
            steps.append(torch.where(ids > 0, token[ids.clamp(min=0)], -1))
            ids = torch.where(ids > 0, parent[ids.clamp(min=0)], ids)
        if not steps:
            return [[] for _ in range(ids.numel())]
        rows = torch.stack(steps[::-1], dim=1)
        return [row[row >= 0].tolist() for row in rows]
