"""Every search from emissions to words, behind one protocol:
`decoder(log_probs [B, T, V], lengths [B]) -> list[Hypothesis]`.

    ViterbiDecoder      exact best path through a graph without epsilon input arcs
    BeamSearchDecoder   WFST beam search through any HLG; n-best and LM rescoring from lattices
                        (its `WfstDecoder` also runs chunk by chunk: init / advance / finish)
    PrefixBeamDecoder   CTC prefix beam search, no graph (character and word-piece models; its
                        `PrefixSearch` also runs chunk by chunk)
    GreedyDecoder       the best token of every frame, no search
    ForcedAligner       the best path of known words (`asr align`)

The graph they search is a `DecodingGraph` (graph, words, tokens, spellings, LM, topology;
one folder format). The topology (`CTCTopology`, `ASGTopology`) is how a model's frames spell
tokens, as its training loss defined it. Every hypothesis carries word and token times in
encoder frames. A `ContextGraph` of hotword phrases is the automaton a search walks beside
its graph to bias it toward those phrases.
"""

from .align import ForcedAligner, force_align, word_spans
from .beam_search import BeamOptions, BeamSearchDecoder, SearchState, WfstDecoder
from .context import ContextGraph
from .graph import DecodingGraph
from .greedy import GreedyDecoder, PrefixBeamDecoder, greedy_ctc
from .hypothesis import Decoder, Hypothesis, token_runs
from .lattice import ScoredWords, lattice_nbest, rescore
from .prefix_search import PrefixSearch, prefix_beam_search
from .topology import ASGTopology, CTCTopology, Topology
from .viterbi import ViterbiDecoder, viterbi_words

__all__ = ["ASGTopology", "CTCTopology", "Topology", "BeamOptions", "BeamSearchDecoder", "ContextGraph", "Decoder", "DecodingGraph", "ForcedAligner", "GreedyDecoder",
           "Hypothesis", "PrefixBeamDecoder", "PrefixSearch", "ScoredWords", "SearchState", "ViterbiDecoder", "WfstDecoder", "force_align",
           "greedy_ctc", "lattice_nbest", "prefix_beam_search", "rescore", "token_runs", "viterbi_words",
           "word_spans"]
