"""Decoding-graph compilation: H o L o G from tokens, a lexicon and a grammar or n-gram LM,
either plainly composed (`compose_hlg`, for small grammars and as a reference) or optimized
with Kaldi-style disambiguation symbols (`compile_hlg`); `build_hlg` makes a
`DecodingGraph` (the folder `asr compile-graph` writes) from symbols.

Determinizing L o G needs every word's token sequence to be recognizable where it ends. A
pronunciation that is a proper prefix of another one, or shared by several words
(homophones), or empty, would leave the word ambiguous, so it gets an auxiliary symbol #k
appended (Kaldi's utils/add_lex_disambig.pl semantics): homophones get #1, #2, ... in lexicon
order, a prefix gets #1 (or the next free number for its sequence). #0 is left for the
grammar's back-off arcs. After determinization and minimization the #k input labels are
replaced by epsilon.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from collections import Counter
from typing import Mapping, Sequence

import torch

import graphs

from .decoding.graph import DecodingGraph
from .decoding.topology import CTCTopology, Topology
from .lm import BOS, EOS, UNK, NgramLM, grammar_from_arpa

log = logging.getLogger("asr.lang")


def disambig_symbol(k: int) -> str:
    return f"#{k}"


def add_disambig_symbols(lexicon: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[tuple[str, list[str]]], int]:
    """(word, tokens) entries in order -> the same entries with #k appended where needed, and
    the largest k used (0 when none was needed). Kaldi also reserves #0 for G and
    `largest + 1` symbols in total: #0 .. #largest."""
    counts = Counter(tuple(tokens) for _, tokens in lexicon)
    prefixes = {tuple(tokens[:i]) for _, tokens in lexicon for i in range(len(tokens))}
    last_used: dict[tuple[str, ...], int] = {}
    result, largest = [], 0
    for word, tokens in lexicon:
        key = tuple(tokens)
        if key in prefixes or counts[key] > 1 or not key:
            k = last_used.get(key, 0) + 1
            last_used[key] = k
            largest = max(largest, k)
            result.append((word, [*tokens, disambig_symbol(k)]))
        else:
            result.append((word, list(tokens)))
    return result, largest


def remove_disambig(graph: graphs.Graph, first_disambig: int) -> graphs.Graph:
    """`graph` with every input label >= first_disambig (the #k symbols, numbered after the real
    tokens) replaced by epsilon; weights are shared, so gradients still reach them."""
    ilabel = graph.ilabel.masked_fill(graph.ilabel >= first_disambig, graphs.EPSILON)
    return graphs.Graph.from_arrays(graph.src, graph.dst, ilabel, graph.olabel, weight=graph.weight,
                                    start=graph.start, accept=graph.accept, num_nodes=graph.num_nodes)


def compose_hlg(num_tokens: int, lexicon: Sequence[tuple[int, Sequence[int]]], grammar: graphs.Graph,
                topology: Topology | None = None) -> graphs.Graph:
    """H o (L o G) composed without disambiguation, determinization or minimization: frame labels
    in, word labels out. `lexicon` holds (word label, token ids) entries, H is `topology`'s
    (default CTC); `grammar` is an acceptor over the same word labels without
    epsilon inputs. Exact and differentiable, but it grows with the lexicon times the grammar:
    for closed vocabularies and as a reference."""
    lexicon_fst = graphs.arc_sort(graphs.lexicon_graph(lexicon), by="olabel")
    return graphs.compose((topology or CTCTopology()).graph(num_tokens), graphs.compose(lexicon_fst, grammar))


def compile_hlg(num_tokens: int, lexicon: Sequence[tuple[int, Sequence[int]]], grammar: graphs.Graph,
                backoff_label: int | None = None, topology: Topology | None = None,
                delta: float = 1.0 / 1024) -> graphs.Graph:
    """HLG = H o min(det(L o G)) with the disambiguation symbols removed, as Kaldi's mkgraph and
    icefall's compile_hlg build it: frame labels in, word labels out.

    `lexicon` holds (word label, token ids) entries (tokens 0..num_tokens-1, `topology`'s blank excluded);
    `grammar` is an acceptor over the same word labels whose back-off arcs carry
    `backoff_label` (a label no word uses; None when G has no back-off arcs). Pronunciations
    get #k symbols (`add_disambig_symbols`), numbered from `num_tokens`. L o G is composed
    with each word on its first token (so only words G allows are expanded), then each word
    arc gets its own copy of its token chain with the word at the end, where the #k symbols
    make it unambiguous: L o G then determinizes and minimizes as an acceptor over (token,
    word) pairs, the way OpenFst's encode works. Then every #k becomes epsilon, and H is
    `topology`'s (default: the CTC topology; `CTCTopology(modified=True)` is k2's O(V) variant
    for large token sets, `ASGTopology` a blank-free model's). The result keeps epsilon
    input arcs (back-off arcs, and words that end on a #k): search it with
    `asr.decoding.BeamSearchDecoder`.
    """
    marked, _ = add_disambig_symbols([(word, list(tokens)) for word, tokens in lexicon])
    first_disambig = num_tokens
    entries = [(word, [t if isinstance(t, int) else first_disambig + int(t[1:]) for t in tokens])
               for word, tokens in marked]
    if backoff_label is not None:
        entries.append((backoff_label, [first_disambig]))  # the #0 self-loop: G's back-off passes through L
    lexicon_fst = graphs.arc_sort(graphs.lexicon_graph(entries), by="olabel")
    lg = graphs.connect(_words_to_chain_ends(graphs.connect(graphs.compose(lexicon_fst, grammar))))
    num_outputs = 1 + max(int(lg.olabel.max()) if lg.num_arcs else 0, backoff_label or 0)
    encoded, decode_pair = _encode_pairs(lg, num_outputs)
    # Determinized in the log semiring (paths with equal labels are summed, not maxed), then
    # minimized after pushing in the tropical semiring, as Kaldi's fstminimizeencoded does:
    # the log-semiring total of G's paths diverges (words are reachable both directly and
    # through back-off arcs), while pushing by tropical potentials keeps every path's weight.
    # LG is determinizable (functional, disambiguated): its size is bounded by its prefix trees.
    encoded = graphs.determinize(encoded, "log", delta=delta, max_nodes=max(1_000_000, 2 * encoded.num_arcs))
    encoded = graphs.minimize(encoded, "tropical", delta=delta)
    ilabel, olabel = decode_pair(encoded.ilabel)
    if backoff_label is not None:
        olabel = olabel.masked_fill(olabel == backoff_label, graphs.EPSILON)
    lg = remove_disambig(graphs.Graph.from_arrays(encoded.src, encoded.dst, ilabel, olabel, weight=encoded.weight,
                                                  start=encoded.start, accept=encoded.accept,
                                                  num_nodes=encoded.num_nodes), first_disambig)
    frames_to_tokens = (topology or CTCTopology()).graph(num_tokens)
    return graphs.connect(graphs.compose(frames_to_tokens, graphs.arc_sort(lg, by="ilabel")))


def _words_to_chain_ends(graph: graphs.Graph) -> graphs.Graph:
    """Move each word label to the end of the token chain it starts: every word arc gets a
    private copy of the chain that follows it (nodes left by one arc without an output label,
    neither start nor accept), with the word on the copy's last arc. Every path keeps its input
    and output strings, and words that share a token prefix now share the labels of that
    prefix, so determinizing (token, word) pairs merges them into a prefix tree per history.
    (In L o G a chain's nodes are shared by all histories that lead to the same next history,
    so the label cannot simply slide along the original chain.)"""
    num_nodes = graph.num_nodes
    out_degree = torch.bincount(graph.src, minlength=num_nodes)
    out_arc = torch.full((num_nodes,), -1, dtype=torch.long)
    out_arc[graph.src] = torch.arange(graph.num_arcs)  # the arc, where out_degree == 1
    chain = (out_degree == 1) & (graph.olabel[out_arc.clamp(min=0)] == graphs.EPSILON)
    chain[torch.as_tensor(graph.start, dtype=torch.long)] = False  # a path may begin or end there
    chain[torch.as_tensor(graph.accept, dtype=torch.long)] = False
    olabel = graph.olabel.clone()
    dst = graph.dst.clone()
    entry = torch.nonzero((olabel != graphs.EPSILON) & chain[graph.dst]).flatten()
    word = olabel[entry]
    copy = num_nodes + torch.arange(entry.numel())
    dst[entry], olabel[entry] = copy, graphs.EPSILON
    new_src, new_dst, new_arc, new_olabel = [], [], [], []
    current, original, next_id = copy, graph.dst[entry], num_nodes + entry.numel()
    for _ in range(num_nodes):
        if not current.numel():
            break
        arc = out_arc[original]
        target = graph.dst[arc]
        inside = chain[target]
        fresh = next_id + torch.arange(int(inside.sum()))
        next_id += fresh.numel()
        ends = target.clone()  # into the next copy inside the chain, else back to the original node
        ends[inside] = fresh
        new_src.append(current)
        new_dst.append(ends)
        new_arc.append(arc)
        new_olabel.append(torch.where(inside, graphs.EPSILON, word))
        current, original, word = fresh, target[inside], word[inside]
    arcs = torch.cat(new_arc) if new_arc else torch.empty(0, dtype=torch.long)
    return graphs.Graph.from_arrays(
        torch.cat([graph.src, *new_src]), torch.cat([dst, *new_dst]), torch.cat([graph.ilabel, graph.ilabel[arcs]]),
        torch.cat([olabel, *new_olabel]), weight=torch.cat([graph.weight.detach(), graph.weight.detach()[arcs]]),
        start=graph.start, accept=graph.accept, num_nodes=next_id)


def _encode_pairs(graph: graphs.Graph, num_outputs: int):
    """`graph` as an acceptor over pair labels i * (num_outputs + 1) + (o + 1), epsilon:epsilon
    staying epsilon; and the function mapping pair labels back to (ilabel, olabel)."""
    both_eps = (graph.ilabel == graphs.EPSILON) & (graph.olabel == graphs.EPSILON)
    pair = torch.where(both_eps, graphs.EPSILON, (graph.ilabel + 1) * (num_outputs + 1) + graph.olabel + 1)
    encoded = graphs.Graph.from_arrays(graph.src, graph.dst, pair, pair, weight=graph.weight.detach(),
                                       start=graph.start, accept=graph.accept, num_nodes=graph.num_nodes)

    def decode_pair(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps = labels == graphs.EPSILON
        ilabel = torch.div(labels, num_outputs + 1, rounding_mode="floor") - 1
        olabel = labels % (num_outputs + 1) - 1
        return ilabel.masked_fill(eps, graphs.EPSILON), olabel.masked_fill(eps, graphs.EPSILON)

    return encoded, decode_pair


def build_hlg(tokens: Sequence[str], lexicon: Mapping[str, Sequence[Sequence[str]]], lm: NgramLM | None = None,
              grammar: graphs.Graph | None = None, optimize: bool = True, topology: Topology | None = None
              ) -> DecodingGraph:
    """The decoding graph over `tokens` (index = id, blank first) for the words of `lexicon`
    (word -> pronunciations as token strings). G is the back-off LM `lm` (n-grams with words
    the lexicon lacks are dropped, with a warning), or `grammar` (an acceptor over word indexes
    in lexicon order, without epsilon arcs), or else any word sequence with every word equally
    likely. `optimize` compiles H o min(det(L o G)) (`compile_hlg`); without it H o L o G is
    composed plainly (`compose_hlg`: exact Viterbi search, for small grammars). H is
    `topology`'s (default CTC). Compile time and peak memory are logged."""
    if lm is not None and grammar is not None:
        raise ValueError("give an LM or a grammar, not both")
    if lm is not None and not optimize:
        raise ValueError("an LM's back-off arcs need the optimized graph (optimize=True)")
    start = time.perf_counter()
    topology = topology or CTCTopology()
    index = {token: i for i, token in enumerate(tokens)}
    words = list(lexicon)
    spellings: dict[str, list[list[int]]] = {}
    entries = []
    for w, word in enumerate(words):
        for pron in lexicon[word]:
            unknown = [t for t in pron if t not in index or index[t] == 0]
            if unknown or not pron:
                raise ValueError(f"lexicon: word {word!r} uses {unknown or 'no'} tokens, not in the token set")
            spellings.setdefault(word, []).append([index[t] for t in pron])
            entries.append((w, spellings[word][-1]))
    backoff: int | None = None
    if lm is not None:
        missing = sorted({w for ngram in lm.probs for w in ngram} - set(words) - {BOS, EOS, UNK})
        if missing:
            log.warning("%d LM words have no pronunciation (e.g. %s); their n-grams are dropped",
                        len(missing), ", ".join(missing[:5]))
        backoff = len(words)
        grammar = grammar_from_arpa(lm, words, backoff_label=backoff)
    elif grammar is None:
        grammar = loop_grammar(len(words))
    if optimize:
        graph = compile_hlg(len(tokens), entries, grammar, backoff_label=backoff, topology=topology)
    else:
        graph = compose_hlg(len(tokens), entries, grammar, topology)
    log.info("HLG: %d words, %s nodes, %s arcs, compiled in %.1f s, process peak RSS %.0f MiB", len(words),
             f"{graph.num_nodes:,}", f"{graph.num_arcs:,}", time.perf_counter() - start,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return DecodingGraph(graph, words, list(tokens), spellings, lm, topology)


def loop_grammar(num_words: int, min_words: int = 0) -> graphs.Graph:
    """Any sequence of at least `min_words` (0 or 1) of `num_words` words, each word equally likely."""
    if min_words not in (0, 1):
        raise ValueError(f"min_words must be 0 or 1, got {min_words}")
    words = list(range(num_words))
    weight = [-math.log(num_words)] * num_words
    if min_words == 0:
        return graphs.Graph.from_arrays([0] * num_words, [0] * num_words, words, weight=weight, start=[0], accept=[0])
    return graphs.Graph.from_arrays([0] * num_words + [1] * num_words, [1] * (2 * num_words), words + words,
                                    weight=weight + weight, start=[0], accept=[1])
