"""WFST beam search: token passing through a decoding graph (HLG), batched and vectorized.

Each frame, every active (utterance, graph node) token is expanded along all its emitting
arcs at once; candidates below the utterance's best minus `beam` are dropped, and tokens
reaching the same node are recombined (Viterbi: the best one survives); at most
`max_active` tokens per utterance are expanded. Epsilon-input arcs (back-off arcs, words ending
on a removed disambiguation symbol, k2's modified CTC topology) are then followed, as
Kaldi's ProcessNonemitting does; they must form no cycle. The frame loop is the only Python loop;
utterances, tokens and arcs are tensor dimensions, so the same code runs on CPU and CUDA.

Traceback keeps only word arcs: a token carries the id of its last word record (word,
frame, previous record), so memory grows with the words hypothesized, not with frames.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

import graphs

from ..arpa_table import ArpaTable
from .align import aligned_hypotheses
from .context import ContextGraph
from .graph import DecodingGraph
from .hypothesis import Hypothesis
from .lattice import lattice_nbest, rescore

NEG_INF = float("-inf")
MAX_LATTICE_PATHS = 1_000_000  # word lattices with more paths are left undeterminized (see BeamSearchResult)


@dataclass
class BeamSearchResult:
    """Best path of each utterance: `words[b]` (graph output labels), `word_frames[b]` (the
    frame at which each word's arc was taken: the word's last token), `score` [B] (-inf when
    no token survived), and `reached_final[b]` (False when the best path had to end outside
    the graph's accept nodes, as Kaldi falls back when no final state is active). With a
`lattice_beam`, `lattices[b]` is the word lattice: a deterministic, minimal acceptor over
word labels whose path weights are the best scores of each word sequence within
lattice_beam of the best (Kaldi's compact lattice, without alignments). A lattice with more
than MAX_LATTICE_PATHS paths (a poor model and a wide lattice beam give exponentially many
word sequences; Kaldi prunes while determinizing) is returned epsilon-free but not
determinized: a word sequence may then have several paths."""

    words: list[list[int]]
    word_frames: list[list[int]]
    score: torch.Tensor
    reached_final: list[bool]
    lattices: list[graphs.Graph] | None = None


@dataclass
class BeamOptions:
    """Beam search settings. `nbest` > 1 or a `rescore_lm` make word lattices (within
    `lattice_beam`); the `nbest` best word sequences (after rescoring the lattice's
    `RESCORED_PATHS` best with `rescore_lm`, when given) become the hypotheses' alternatives."""

    beam: float = 16.0
    max_active: int = 2000
    lm_scale: float = 1.0
    word_score: float = 0.0
    lattice_beam: float = 8.0
    nbest: int = 1
    rescore_lm: ArpaTable | None = None

    RESCORED_PATHS = 100

    @property
    def wants_lattices(self) -> bool:
        return self.nbest > 1 or self.rescore_lm is not None

    @classmethod
    def numeric(cls, options: object, where: str) -> dict[str, float]:
        """`options` checked as settings of numbers (a model directory's decoding.json):
        ValueError naming `where` for anything else."""
        names = [field.name for field in dataclasses.fields(cls) if field.name != "rescore_lm"]
        if not isinstance(options, dict) or set(options) - set(names) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
            raise ValueError(f"{where}: expected an object of numbers with keys among {', '.join(names)}, "
                             f"got {options!r}")
        return dict(options)


class BeamSearchDecoder:
    """WFST beam search (`WfstDecoder`) through a decoding graph, with n-best lists and LM
    rescoring from word lattices when the options ask for them; word times by forced
    alignment of the words found; biased toward hotword phrases by a `context` graph over
    the graph's word labels."""

    def __init__(self, graph: DecodingGraph, options: BeamOptions | None = None, device: str | torch.device = "cpu",
                 context: ContextGraph | None = None):
        self.graph, self.options = graph, options or BeamOptions()
        if self.options.rescore_lm is not None and graph.lm is None:
            raise ValueError("rescoring needs the LM the graph was compiled with (lm.arpa in its directory)")
        o = self.options
        self.search = WfstDecoder(graph.graph, o.beam, o.max_active, o.lm_scale, o.word_score, device,
                                  lattice_beam=o.lattice_beam if o.wants_lattices else None, context=context)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        result = self.search(log_probs, lengths)
        labels, scores = result.words, result.score.tolist()
        alternatives: list[list[tuple[list[str], float]]] = [[] for _ in labels]
        if result.lattices is not None:
            for b, lattice in enumerate(result.lattices):
                ranked = self._ranked(lattice)
                alternatives[b] = [(self._words(h.words), round(h.score, 3)) for h in ranked[:self.options.nbest]]
                labels[b], scores[b] = (ranked[0].words, ranked[0].score) if ranked else ([], scores[b])
        hypotheses = aligned_hypotheses(log_probs, lengths, [self._words(ws) for ws in labels], self.graph.spell, scores,
                                        self.graph.topology)
        for hypothesis, alternative in zip(hypotheses, alternatives):
            hypothesis.alternatives = alternative
        return hypotheses

    def _ranked(self, lattice: graphs.Graph):
        """The lattice's best word sequences, rescored with the options' LM when there is one."""
        o = self.options
        ranked = lattice_nbest(lattice, max(o.nbest, o.RESCORED_PATHS if o.rescore_lm else 1))
        if o.rescore_lm is not None:
            ranked = rescore(ranked, self.graph.words, self.graph.lm, o.rescore_lm, o.lm_scale)
        return ranked

    def _words(self, labels: list[int]) -> list[str]:
        return [self.graph.words[w] for w in labels]


class _Arcs:
    """Arcs of one kind (emitting or epsilon-input) grouped by source node, on the device."""

    def __init__(self, graph: graphs.Graph, mask: torch.Tensor, weight: torch.Tensor, device):
        src = graph.src[mask]
        order = torch.argsort(src, stable=True)
        self.dst = graph.dst[mask][order].to(device)
        self.ilabel = graph.ilabel[mask][order].to(device)
        self.olabel = graph.olabel[mask][order].to(device)
        self.weight = weight[mask][order].to(device)
        counts = torch.bincount(src, minlength=graph.num_nodes)
        self.offsets = torch.zeros(graph.num_nodes + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(counts, 0)
        self.offsets = self.offsets.to(device)

    def expand(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token index, arc index) for every arc leaving each token's node."""
        first, end = self.offsets[nodes], self.offsets[nodes + 1]
        counts = end - first
        token = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts)
        starts = torch.cumsum(counts, 0) - counts
        arc = first[token] + torch.arange(token.numel(), device=nodes.device) - starts[token]
        return token, arc


class WfstDecoder:
    """Beam search through one decoding graph, reused across batches.

    Arc scores are `lm_scale * weight + word_score` on word arcs (the graph's weights are the
    language model's, in natural log; `word_score` is flashlight's word insertion bonus), plus
    the emission score of the arc's input label. With a `context` graph over the graph's word
    labels (hotwords), each hypothesis also walks it: a word arc adds the context's bonus,
    hypotheses in different context states are not recombined, and the best path is chosen
    with an unfinished phrase's bonus taken back.
    """

    def __init__(self, graph: graphs.Graph, beam: float = BeamOptions.beam, max_active: int = BeamOptions.max_active,
                 lm_scale: float = BeamOptions.lm_scale, word_score: float = BeamOptions.word_score,
                 device: str | torch.device = "cpu", lattice_beam: float | None = None,
                 context: ContextGraph | None = None):
        if beam <= 0 or max_active < 1:
            raise ValueError(f"beam must be > 0 and max_active >= 1, got {beam} and {max_active}")
        if lattice_beam is not None and not 0 <= lattice_beam <= beam:
            raise ValueError(f"lattice_beam must lie in [0, beam={beam}], got {lattice_beam}")
        self.beam, self.max_active, self.device = float(beam), int(max_active), torch.device(device)
        self.lattice_beam, self.context = lattice_beam, context
        self.num_contexts = 1 if context is None else len(context.node_score)
        weight = graph.weight.detach().float() * lm_scale + word_score * (graph.olabel != graphs.EPSILON).float()
        emitting = graph.ilabel != graphs.EPSILON
        self.emitting = _Arcs(graph, emitting, weight, self.device)
        self.epsilon = _Arcs(graph, ~emitting, weight, self.device)
        _check_no_epsilon_cycle(graph, ~emitting)
        self.num_nodes = graph.num_nodes
        self.start = torch.as_tensor(graph.start, dtype=torch.long).reshape(-1).to(self.device)
        self.is_accept = torch.zeros(graph.num_nodes, dtype=torch.bool)
        self.is_accept[torch.as_tensor(graph.accept, dtype=torch.long)] = True
        self.is_accept = self.is_accept.to(self.device)

    @torch.no_grad()
    def __call__(self, log_probs: torch.Tensor, lengths) -> BeamSearchResult:
        """Decode emissions [B, T, V] (utterance b uses its first lengths[b] frames)."""
        search = self.init(log_probs.shape[0])
        self.advance(search, log_probs, lengths)
        return self.finish(search)

    def init(self, size: int) -> SearchState:
        """A search of `size` utterances that have seen no frame yet; feed it emissions chunk by
        chunk with `advance` and read the result with `finish` (streaming, or emissions too long
        to hold at once: a chunk's frames are not kept, only the tokens and word records)."""
        utt = torch.arange(size, device=self.device).repeat_interleave(self.start.numel())
        tokens = _Tokens(utt, self.start.repeat(size), torch.zeros(utt.numel(), device=self.device),
                         torch.full_like(utt, -1), torch.arange(utt.numel(), device=self.device), torch.zeros_like(utt))
        search = SearchState(size, torch.zeros(size, dtype=torch.long, device=self.device), tokens, _Records(),
                             _LatticeArcs() if self.lattice_beam is not None else None, tokens, utt.numel())
        search.tokens, search.next_id = self._follow_epsilons(tokens, search.records, search.frames - 1, size,
                                                              search.lattice, search.next_id)
        return search

    @torch.no_grad()
    def advance(self, search: SearchState, log_probs: torch.Tensor, lengths) -> None:
        """Extend `search` by the next frames of each utterance: emissions [B, T, V], of which
        utterance b has lengths[b] (0 when it has nothing new)."""
        log_probs = log_probs.to(self.device, torch.float32)
        size, frames, vocab = log_probs.shape
        lengths = torch.as_tensor(lengths, device=self.device).long().reshape(-1)
        if size != search.size or lengths.numel() != size:
            raise ValueError(f"beam search: emissions for {size} utterances and {lengths.numel()} lengths, "
                             f"for a search of {search.size}")
        if self.emitting.ilabel.numel() and int(self.emitting.ilabel.max()) >= vocab:
            raise ValueError(f"beam search: the graph has input labels >= {vocab}, the emissions' vocabulary")
        tokens, next_id = search.tokens, search.next_id
        for t in range(frames):
            live = lengths[tokens.utt] > t
            idle, tokens = tokens.select(~live), tokens.select(live)  # utterances whose chunk has ended wait
            if not tokens.utt.numel():
                tokens = idle
                break
            if search.lattice is not None:
                search.lattice.start_frame()
            frame = search.frames + t
            tokens, next_id = self._advance(tokens, log_probs[:, t], search.records, frame, size, search.lattice,
                                            next_id)
            tokens, next_id = self._follow_epsilons(tokens, search.records, frame, size, search.lattice, next_id)
            tokens = _Tokens.cat([idle, tokens])
        search.tokens, search.next_id = tokens, next_id
        search.frames += lengths.clamp(max=frames)

    def finish(self, search: SearchState) -> BeamSearchResult:
        """The best path (and lattice) of each utterance over all the frames it was given."""
        result = self._best_paths(search.tokens, search.records, search.size)
        if search.lattice is not None:
            result.lattices = self._word_lattices(search.lattice, search.first_tokens, search.tokens, search.size)
        return result

    def _advance(self, tokens: _Tokens, frame_log_probs: torch.Tensor, records: _Records, frame: torch.Tensor,
                 size: int, lattice: _LatticeArcs | None, next_id: int) -> tuple[_Tokens, int]:
        tokens = tokens.select(self._within_max_active(tokens))  # as Kaldi: on all tokens, epsilon-reached too
        token, arc = self.emitting.expand(tokens.node)
        arcs = self.emitting
        utt = tokens.utt[token]
        score = tokens.score[token] + arcs.weight[arc] + frame_log_probs[utt, arcs.ilabel[arc]]
        bonus, context = self._context_steps(tokens.context[token], arcs.olabel[arc])
        score = score + bonus
        best = graphs.segment_max(score, utt, size)
        keep = score >= best[utt] - self.beam
        token, arc, utt, score, context = token[keep], arc[keep], utt[keep], score[keep], context[keep]
        winner, group = self._recombine(utt, arcs.dst[arc], score, context)
        ids = next_id + torch.arange(winner.numel(), device=self.device)
        if lattice is not None:  # every candidate in the beam becomes an arc into its node's token
            lattice.add(utt, tokens.id[token], ids[group], arcs.olabel[arc], score - tokens.score[token])
        token, arc = token[winner], arc[winner]
        record = records.extend(tokens.record[token], arcs.olabel[arc], frame[tokens.utt[token]])
        return (_Tokens(tokens.utt[token], arcs.dst[arc], score[winner], record, ids, context[winner]),
                next_id + winner.numel())

    def _context_steps(self, states: torch.Tensor, olabel: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor]:
        """The hotword bonus of each arc's output word and the context state it leads to
        (epsilon outputs: no bonus, same state; without hotwords a bonus of 0.0 for all)."""
        if self.context is None:
            return 0.0, states
        word = olabel != graphs.EPSILON
        gained, moved = self.context.step(states[word].cpu().numpy(), olabel[word].cpu().numpy())
        bonus = torch.zeros(states.shape, device=self.device)
        bonus[word] = torch.from_numpy(gained).to(self.device, torch.float32)
        states = states.clone()
        states[word] = torch.from_numpy(moved).to(self.device)
        return bonus, states

    def _follow_epsilons(self, tokens: _Tokens, records: _Records, frame: torch.Tensor, size: int,
                         lattice: _LatticeArcs | None, next_id: int) -> tuple[_Tokens, int]:
        """Add the tokens reachable over epsilon-input arcs (within the beam), round by round
        from the tokens added last; the epsilon arcs form no cycle, so the rounds end. Tokens
        reaching a node twice are recombined once at the end (and their lattice arcs moved
        to the surviving token). `frame` [B]: each utterance's current frame."""
        if not self.epsilon.dst.numel():
            return tokens, next_id
        best = graphs.segment_max(tokens.score, tokens.utt, size)
        parts, frontier = [tokens], tokens
        while True:
            token, arc = self.epsilon.expand(frontier.node)
            utt = frontier.utt[token]
            bonus, context = self._context_steps(frontier.context[token], self.epsilon.olabel[arc])
            score = frontier.score[token] + self.epsilon.weight[arc] + bonus
            keep = score >= best[utt] - self.beam
            if not bool(keep.any()):
                break
            token, arc, utt, score, context = token[keep], arc[keep], utt[keep], score[keep], context[keep]
            record = records.extend(frontier.record[token], self.epsilon.olabel[arc], frame[utt])
            ids = next_id + torch.arange(token.numel(), device=self.device)
            next_id += token.numel()
            if lattice is not None:
                lattice.add(utt, frontier.id[token], ids, self.epsilon.olabel[arc], score - frontier.score[token])
            frontier = _Tokens(utt, self.epsilon.dst[arc], score, record, ids, context)
            parts.append(frontier)
        if len(parts) == 1:
            return tokens, next_id
        merged = _Tokens.cat(parts)
        winner, group = self._recombine(merged.utt, merged.node, merged.score, merged.context)
        if lattice is not None:
            lattice.rename(merged.id, merged.id[winner][group])
        return merged.select(winner), next_id
    def _recombine(self, utt: torch.Tensor, node: torch.Tensor, score: torch.Tensor, context: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Index of the best candidate for each distinct (utterance, node, context state), and
        the group (index into those winners) of every candidate."""
        key, group = torch.unique((utt * self.num_nodes + node) * self.num_contexts + context, return_inverse=True)
        return graphs.segment_argmax(score, group, key.numel()), group

    def _within_max_active(self, tokens: _Tokens) -> torch.Tensor:
        """Mask of each utterance's `max_active` best tokens."""
        counts = torch.bincount(tokens.utt)
        if not counts.numel() or int(counts.max()) <= self.max_active:
            return torch.ones_like(tokens.utt, dtype=torch.bool)
        order = torch.argsort(tokens.score, descending=True, stable=True)
        order = order[torch.argsort(tokens.utt[order], stable=True)]
        first_of_utt = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel(), device=order.device) - first_of_utt[tokens.utt[order]]
        keep = torch.zeros_like(tokens.utt, dtype=torch.bool)
        keep[order[rank < self.max_active]] = True
        return keep

    def _best_paths(self, tokens: _Tokens, records: _Records, size: int) -> BeamSearchResult:
        final = self.is_accept[tokens.node]
        if self.context is not None:  # an unfinished phrase keeps no bonus
            unfinished = self.context.finalize(tokens.context.cpu().numpy())
            tokens = dataclasses.replace(tokens, score=tokens.score + torch.from_numpy(unfinished).to(
                self.device, torch.float32))
        # Prefer tokens in accept nodes: push the others below every final score.
        rank_score = torch.where(final, tokens.score, tokens.score - 1e30)
        best = graphs.segment_argmax(rank_score, tokens.utt, size)
        found = best >= 0
        score = torch.full((size,), NEG_INF, device=self.device)
        score[found] = tokens.score[best[found]]
        reached = torch.zeros(size, dtype=torch.bool, device=self.device)
        reached[found] = final[best[found]]
        record = torch.full((size,), -1, dtype=torch.long, device=self.device)
        record[found] = tokens.record[best[found]]
        words, word_frames = records.trace(record)
        return BeamSearchResult(words, word_frames, score.cpu(), reached.cpu().tolist())


    def _word_lattices(self, lattice: _LatticeArcs, first: _Tokens, final: _Tokens, size: int) -> list[graphs.Graph]:
        """Per utterance: the token lattice (every arc explored within the search beam), pruned
        to the paths within lattice_beam of the best, projected on the words, epsilon-free,
        determinized and minimized in the tropical semiring."""
        utt, src, dst, olabel, weight = lattice.arrays()
        accept = final.select(self.is_accept[final.node])
        accept = accept if accept.utt.numel() else final
        raw = []
        for b in range(size):  # assembling one output graph per utterance
            mine = utt == b
            starts, ends = first.id[first.utt == b], accept.id[accept.utt == b]
            nodes, local = torch.unique(torch.cat([src[mine], dst[mine], starts, ends]), return_inverse=True)
            arcs = int(mine.sum())
            raw.append(graphs.Graph.from_arrays(
                local[:arcs], local[arcs:2 * arcs], olabel[mine], weight=weight[mine].double(),
                start=local[2 * arcs:2 * arcs + starts.numel()], accept=local[2 * arcs + starts.numel():],
                num_nodes=nodes.numel()))
        words = graphs.remove_epsilon(graphs.prune(graphs.connect(raw), self.lattice_beam), "tropical")
        # A deterministic word lattice has a state per distinct word-sequence prefix: count the
        # paths (log-sum of zero weights) and leave the lattices with too many as they are.
        unweighted = [graphs.Graph.from_arrays(g.src, g.dst, g.ilabel, weight=torch.zeros(g.num_arcs), start=g.start,
                                               accept=g.accept, num_nodes=g.num_nodes) for g in words]
        small = (graphs.forward_score(unweighted) <= math.log(MAX_LATTICE_PATHS)).tolist()
        chosen = [g for g, ok in zip(words, small) if ok]
        determinized = iter(graphs.minimize(graphs.determinize(chosen, "tropical"), "tropical") if chosen else [])
        return [next(determinized) if ok else g for g, ok in zip(words, small)]


def _check_no_epsilon_cycle(graph: graphs.Graph, epsilon: torch.Tensor) -> None:
    arcs = graphs.Graph.from_arrays(graph.src[epsilon], graph.dst[epsilon], graph.ilabel[epsilon],
                                    num_nodes=graph.num_nodes, start=[], accept=[])
    try:
        graphs.topsort(arcs)
    except ValueError:
        raise ValueError("beam search: the graph has a cycle of epsilon-input arcs; "
                         "remove it first (graphs.remove_epsilon)") from None


@dataclass
class SearchState:
    """A beam search in progress (`WfstDecoder.init`, `advance`, `finish`): its live tokens,
    the word records and lattice arcs behind them, and the frames each utterance has had."""

    size: int
    frames: torch.Tensor
    tokens: _Tokens
    records: _Records
    lattice: _LatticeArcs | None
    first_tokens: _Tokens
    next_id: int


@dataclass
class _Tokens:
    """Active hypotheses: utterance, graph node, score and last word record of each."""

    utt: torch.Tensor
    node: torch.Tensor
    score: torch.Tensor
    record: torch.Tensor
    id: torch.Tensor  # unique over the whole search: the token's node in the lattice
    context: torch.Tensor  # its state in the hotwords' context graph (0 without one)

    def select(self, mask: torch.Tensor) -> _Tokens:
        return _Tokens(self.utt[mask], self.node[mask], self.score[mask], self.record[mask], self.id[mask],
                       self.context[mask])

    @staticmethod
    def cat(parts: list[_Tokens]) -> _Tokens:
        return _Tokens(*(torch.cat([getattr(p, name) for p in parts])
                         for name in ("utt", "node", "score", "record", "id", "context")))


class _LatticeArcs:
    """Arcs between token ids (utterance, source, target, word or epsilon, score increment)."""

    def __init__(self):
        self.parts: list[tuple[torch.Tensor, ...]] = []
        self.frame_start = 0

    def start_frame(self) -> None:
        self.frame_start = len(self.parts)

    def add(self, utt, src, dst, olabel, weight) -> None:
        self.parts.append((utt, src, dst, olabel, weight))

    def rename(self, old: torch.Tensor, new: torch.Tensor) -> None:
        """Token `old[i]` lost to `new[i]` (same node, same frame): its arcs move to the
        survivor. Only arcs of the current frame can name a token of this frame."""
        moved = old != new
        if not bool(moved.any()):
            return
        old, new = old[moved], new[moved]
        order = torch.argsort(old)
        old, new = old[order], new[order]
        for i in range(self.frame_start, len(self.parts)):
            utt, src, dst, olabel, weight = self.parts[i]
            self.parts[i] = (utt, _rename(src, old, new), _rename(dst, old, new), olabel, weight)

    def arrays(self) -> tuple[torch.Tensor, ...]:
        return tuple(torch.cat([p[k] for p in self.parts]).cpu() for k in range(5))


def _rename(ids: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    position = torch.searchsorted(old, ids).clamp(max=old.numel() - 1)
    return torch.where(old[position] == ids, new[position], ids)


class _Records:
    """Word records (word, frame, previous record) appended as tokens take word arcs."""

    def __init__(self):
        self.word, self.frame, self.previous = [], [], []
        self.size = 0

    def extend(self, previous: torch.Tensor, olabel: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Record id of each new token: a new record where it took a word arc (at its `frame`),
        else its previous one."""
        is_word = olabel != graphs.EPSILON
        count = int(is_word.sum())
        result = previous.clone()
        if count:
            result[is_word] = self.size + torch.arange(count, device=previous.device)
            self.word.append(olabel[is_word])
            self.previous.append(previous[is_word])
            self.frame.append(frame[is_word])
            self.size += count
        return result

    def trace(self, record: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
        """Words and frames from the first record to each given one (all utterances at once)."""
        if not self.size:
            return [[] for _ in range(record.numel())], [[] for _ in range(record.numel())]
        word, frame, previous = (torch.cat(x).cpu() for x in (self.word, self.frame, self.previous))
        record = record.cpu()
        steps_word, steps_frame = [], []
        while bool((record >= 0).any()):
            live = record >= 0
            safe = record.clamp(min=0)
            steps_word.append(torch.where(live, word[safe], -2))
            steps_frame.append(torch.where(live, frame[safe], -2))
            record = torch.where(live, previous[safe], record)
        if not steps_word:
            return [[] for _ in range(record.numel())], [[] for _ in range(record.numel())]
        words = torch.stack(steps_word[::-1], 1)
        frames = torch.stack(steps_frame[::-1], 1)
        keep = words != -2
        return ([row[k].tolist() for row, k in zip(words, keep)], [row[k].tolist() for row, k in zip(frames, keep)])
