"""Shared fixtures of the asr tests: a tiny untrained YES/NO model directory and noise audio."""

import numpy as np
import pytest
import soundfile
import torch

from asr.features import Fbank, GlobalCMVN
from asr.lang import build_hlg, loop_grammar
from asr.model import EncoderConfig, TransformerEncoder
from asr.model_dir import Featurizer, save_model_dir
from asr.tokenizer import PhoneTokenizer

WORDS = ["NO", "YES"]
RATE = 8000


@pytest.fixture
def model_dir(tmp_path):
    """A model directory whose tokens are the words YES and NO (one token each)."""
    torch.manual_seed(0)
    tokenizer = PhoneTokenizer({w: [[w]] for w in WORDS}, phones=WORDS)
    model = TransformerEncoder(EncoderConfig(vocab_size=3, input_dim=23, d_model=32, num_heads=2, num_layers=1,
                                             ff_dim=64, dropout=0.0))
    with torch.no_grad():
        model.output.bias.copy_(torch.tensor([0.0, 1.5, 1.0]))  # emit words often, so transcripts are not empty
    fbank = Fbank(num_mel_bins=23, sample_rate=RATE)
    featurizer = Featurizer(fbank, GlobalCMVN(torch.full((23,), 10.0), torch.full((23,), 3.0)))
    graph = build_hlg(tokenizer.tokens, {w: [[w]] for w in WORDS}, grammar=loop_grammar(2), optimize=False)
    return save_model_dir(tmp_path / "model", model, tokenizer, featurizer, graph)


def noise_wav(path, seconds, seed):
    """Write `seconds` of seeded white noise at RATE to `path`; returns the path."""
    samples = np.random.default_rng(seed).normal(0, 0.1, int(seconds * RATE)).astype(np.float32)
    soundfile.write(str(path), samples, RATE)
    return path
