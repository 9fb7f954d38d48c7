"""N-best rescoring with another LM equals decoding with that LM's graph."""

import random

import pytest
import torch

from asr.arpa_table import ArpaTable
from asr.decoding import WfstDecoder, lattice_nbest, rescore
from asr.lm import estimate_kneser_ney, write_arpa

from .test_beam_search import WORDS, hlg


def sentences(seed, favourite):
    rng = random.Random(seed)
    return [[rng.choice(favourite if rng.random() < 0.7 else WORDS) for _ in range(rng.randint(1, 4))]
            for _ in range(40)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rescoring_a_wide_lattice_with_a_new_lm_finds_what_decoding_with_it_finds(seed, tmp_path):
    old_lm = estimate_kneser_ney(sentences(seed, ["ab", "c"]), 3)
    new_lm = estimate_kneser_ney(sentences(seed + 10, ["ba", "cc", "a"]), 3)
    write_arpa(new_lm, tmp_path / "new.arpa")
    new_table = ArpaTable.read(tmp_path / "new.arpa")  # the form --rescore-lm and recipes read it in
    torch.manual_seed(seed)
    log_probs, lengths = (torch.randn(2, 6, 4)).log_softmax(-1), [6, 5]
    unpruned = dict(beam=1e9, max_active=10**6)
    lattices = WfstDecoder(hlg(old_lm), lattice_beam=1e9, **unpruned)(log_probs, lengths).lattices
    direct = WfstDecoder(hlg(new_lm), **unpruned)(log_probs, lengths)
    for b in range(2):
        hypotheses = lattice_nbest(lattices[b], 100_000)
        assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
        unchanged = rescore(hypotheses, WORDS, old_lm, old_lm)
        assert [h.score for h in unchanged] == pytest.approx([h.score for h in hypotheses])
        for lm in (new_lm, new_table):
            best = rescore(hypotheses, WORDS, old_lm, lm)[0]
            assert best.words == direct.words[b]
            assert best.score == pytest.approx(direct.score[b].item(), abs=1e-3)
