"""Tests of the encoders (transformer and conformer layers): lengths, masking, rotary positions,
config, and that they learn."""

import json
import logging

import pytest
import torch

from asr.losses import CTCLoss
from asr.model import Conv2dSubsampling, EncoderConfig, RotaryEmbedding, TransformerEncoder


def tiny_config(**overrides) -> EncoderConfig:
    values = dict(vocab_size=7, input_dim=20, d_model=32, num_heads=2, num_layers=2, ff_dim=64, dropout=0.0)
    return EncoderConfig(**{**values, **overrides})


@pytest.mark.parametrize("factor", [4, 2, 1])
def test_output_lengths_match_convolution_output(factor):
    sub = Conv2dSubsampling(input_dim=20, d_model=8, channels=4, factor=factor)
    for length in range(sub.min_length, 150):
        produced = sub(torch.zeros(1, length, 20)).shape[1]
        assert produced == int(sub.output_lengths(torch.tensor([length]))[0]) >= 1, length
    assert sub.output_lengths(torch.arange(sub.min_length)).eq(0).all()
    assert int(sub.output_lengths(torch.tensor(sub.min_length))) == 1
    with pytest.raises(ValueError, match="input frames"):
        sub(torch.zeros(1, sub.min_length - 1, 20))


def test_encoder_shapes_lengths_and_normalization():
    model = TransformerEncoder(tiny_config()).eval()
    lengths = torch.arange(7, 90)
    features = torch.randn(len(lengths), 90, 20)
    log_probs, out_lengths = model(features, lengths)
    expected = model.subsampling.output_lengths(lengths)
    assert torch.equal(out_lengths, expected)
    assert torch.equal(expected, ((lengths - 1) // 2 - 1) // 2)  # the x4 formula, for T >= 7
    assert log_probs.shape == (len(lengths), int(model.output_lengths(torch.tensor(90))), 7)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), atol=1e-5)


@pytest.mark.parametrize("architecture", ["transformer", "conformer"])
@pytest.mark.parametrize("factor", [4, 2, 1])
def test_padding_invariance(factor, architecture):
    # Each utterance alone must give the same valid outputs as inside a longer, garbage-padded batch
    # (for the conformer: its depthwise convolution must not read padding frames).
    torch.manual_seed(0)
    model = TransformerEncoder(tiny_config(subsampling=factor, dropout=0.1, architecture=architecture)).eval()
    lengths = torch.tensor([50, 37, 23, 9])
    utterances = [torch.randn(n, 20) for n in lengths.tolist()]
    batch = torch.randn(len(utterances), 80, 20) * 10.0  # padding is garbage, not zeros
    for b, utterance in enumerate(utterances):
        batch[b, : len(utterance)] = utterance
    with torch.no_grad():
        batched, out_lengths = model(batch, lengths)
        for b, utterance in enumerate(utterances):
            alone, alone_length = model(utterance[None], lengths[b : b + 1])
            n = int(out_lengths[b])
            assert n == int(alone_length[0]) == alone.shape[1]
            torch.testing.assert_close(batched[b, :n], alone[0], atol=1e-5, rtol=0)


def test_rotary_scores_depend_only_on_relative_offset():
    torch.manual_seed(0)
    head_dim, length = 16, 40
    rotary = RotaryEmbedding(head_dim)
    q, k = torch.randn(head_dim), torch.randn(head_dim)
    # The same q and k at every position: after rotation, q_i . k_j must be a function of i - j.
    rq, rk = rotary(q.expand(length, head_dim)), rotary(k.expand(length, head_dim))
    scores = rq @ rk.T
    for shift in (1, 7, 25):
        torch.testing.assert_close(scores[shift:, shift:], scores[:-shift, :-shift], atol=1e-4, rtol=1e-5)
    assert scores.diagonal(0).sub(scores[0, 0]).abs().max() < 1e-4
    assert (scores.diagonal(0)[0] - scores.diagonal(3)[0]).abs() > 1e-3  # but it does depend on the offset
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(length))  # rotations keep norms
    torch.testing.assert_close(rq[0], q)  # position 0 is unrotated


@pytest.mark.parametrize("architecture", ["transformer", "conformer"])
def test_gradients_reach_all_parameters(architecture):
    torch.manual_seed(0)
    model = TransformerEncoder(tiny_config(dropout=0.1, architecture=architecture))
    lengths = torch.tensor([40, 25])
    log_probs, out_lengths = model(torch.randn(2, 40, 20), lengths)
    valid = torch.arange(log_probs.shape[1]) < out_lengths[:, None]
    (log_probs * torch.randn_like(log_probs))[valid].sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_config_round_trip_and_errors():
    config = EncoderConfig(vocab_size=500, d_model=256, num_layers=12, conv_channels=64, subsampling=2)
    restored = EncoderConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    source = TransformerEncoder(tiny_config())
    TransformerEncoder(EncoderConfig.from_dict(source.config.to_dict())).load_state_dict(source.state_dict())
    with pytest.raises(ValueError, match="EncoderConfig: unknown key d_modle"):
        EncoderConfig.from_dict({"vocab_size": 10, "d_modle": 256})
    with pytest.raises(ValueError, match="heads"):
        EncoderConfig(vocab_size=10, d_model=144, num_heads=5)
    with pytest.raises(ValueError, match="subsampling"):
        EncoderConfig(vocab_size=10, subsampling=3)
    with pytest.raises(ValueError, match="architecture must be one of transformer, conformer"):
        EncoderConfig(vocab_size=10, architecture="lstm")
    with pytest.raises(ValueError, match="conv_kernel"):
        EncoderConfig(vocab_size=10, architecture="conformer", conv_kernel=14)


def test_default_parameter_count_is_logged(caplog):
    vocab, d, ff, layers, freq = 500, 144, 576, 6, 19  # 80 mel bins -> 39 -> 19 after two stride-2 convs
    subsampling = (9 * d + d) + (9 * d * d + d) + (d * freq * d + d) + 2 * d  # convs, linear, LayerNorm
    layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    expected = subsampling + layers * layer + 2 * d + (d * vocab + vocab)
    with caplog.at_level(logging.INFO, logger="asr.model"):
        model = TransformerEncoder(EncoderConfig(vocab_size=vocab))
    print(f"default encoder (vocab {vocab}): {model.num_parameters():,} parameters")
    assert model.num_parameters() == expected
    assert 2.0e6 < expected < 2.3e6
    assert f"{expected:,} parameters" in caplog.text


def test_conformer_parameter_count():
    """Each conformer layer: two feed-forwards, attention, the convolution module, five LayerNorms."""
    d, ff, kernel, layers = 32, 64, 7, 2
    model = TransformerEncoder(tiny_config(architecture="conformer", conv_kernel=kernel))
    transformer = TransformerEncoder(tiny_config())
    feed_forward = (d * ff + ff) + (ff * d + d)
    conv_module = (d * 2 * d + 2 * d) + (d * kernel + d) + 2 * d + (d * d + d)
    extra_per_layer = feed_forward + conv_module + 3 * 2 * d  # one more FFN, the conv module, 3 more LayerNorms
    assert model.num_parameters() - transformer.num_parameters() == layers * extra_per_layer


def test_conformer_convolution_sees_only_its_kernel_in_one_layer():
    """With one conformer layer and no attention reach (window 0 is full, so use window 1), an
    output frame depends on subsampled frames at most kernel // 2 + window away."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=5, architecture="conformer", conv_kernel=5, num_layers=1, attention_window=1)
    model = TransformerEncoder(config).eval()
    features, lengths = torch.randn(1, 400, config.input_dim), torch.tensor([400])
    before, _ = model(features, lengths)
    changed = features.clone()
    changed[:, 300:] += 3.0  # reaches subsampled frames >= 74 through the subsampling convolutions
    after, _ = model(changed, lengths)
    untouched = 300 // 4 - 1 - (config.conv_kernel // 2 + config.attention_window)
    assert torch.equal(before[0, : untouched - 1], after[0, : untouched - 1])
    assert not torch.allclose(before[0, untouched + 1 :], after[0, untouched + 1 :])


@pytest.mark.parametrize("architecture", ["transformer", "conformer"])
def test_overfits_four_utterances_with_ctc(architecture):
    torch.manual_seed(0)
    model = TransformerEncoder(tiny_config(vocab_size=6, architecture=architecture))
    features = torch.randn(4, 64, 20)
    lengths = torch.tensor([64, 56, 48, 40])
    targets = torch.tensor([[1, 2, 3, 4], [5, 4, 3, 0], [2, 2, 1, 0], [3, 5, 0, 0]])
    target_lengths = torch.tensor([4, 3, 3, 2])
    loss_fn = CTCLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        log_probs, out_lengths = model(features, lengths)
        loss = loss_fn(log_probs, targets, out_lengths, target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():
        best = model(features, lengths)[0].argmax(-1)
    for b in range(4):
        path = best[b, : out_lengths[b]].tolist()
        decoded = [t for i, t in enumerate(path) if t != 0 and (i == 0 or path[i - 1] != t)]
        assert decoded == targets[b, : target_lengths[b]].tolist()


def test_attention_window_limits_what_each_frame_sees():
    """With attention_window=w, an output frame does not change when inputs far from it change."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=5, attention_window=2)
    model = TransformerEncoder(config).eval()
    features = torch.randn(1, 200, config.input_dim)
    lengths = torch.tensor([200])
    before, _ = model(features, lengths)
    changed = features.clone()
    changed[:, 150:] += 3.0  # input frames >= 150 reach output frames >= ~36 directly (conv receptive field)
    after, _ = model(changed, lengths)
    reach = config.num_layers * config.attention_window + 2
    first_touched = 150 // 4 - 1
    assert torch.equal(before[0, : first_touched - reach], after[0, : first_touched - reach])
    assert not torch.allclose(before[0, first_touched:], after[0, first_touched:])
    with pytest.raises(ValueError, match="attention_window"):
        EncoderConfig(vocab_size=5, attention_window=-1)


def test_blank_bias_starts_from_mostly_blank_emissions():
    """blank_bias raises the initial blank logit by that much, so untrained emissions are mostly blank."""
    torch.manual_seed(0)
    plain = TransformerEncoder(tiny_config(vocab_size=5)).eval()
    torch.manual_seed(0)
    biased = TransformerEncoder(tiny_config(vocab_size=5, blank_bias=3.0)).eval()
    features, lengths = torch.randn(2, 40, 20), torch.tensor([40, 31])
    assert torch.allclose(biased.output.bias - plain.output.bias, torch.tensor([3.0, 0, 0, 0, 0]))
    blank_share = biased(features, lengths)[0][..., 0].exp().mean()
    assert blank_share > 0.7 > plain(features, lengths)[0][..., 0].exp().mean()


@pytest.mark.parametrize("window", [1, 3, 8])
def test_banded_attention_equals_dense_masked_attention(window):
    """The blocked band computes exactly what a dense T x T mask (|i - j| <= window, keys within
    the utterance) gives on every valid frame, for lengths that are and are not multiples of
    the block."""
    from asr.model import AttentionMask, SelfAttention

    torch.manual_seed(window)
    attention = SelfAttention(32, 2, dropout=0.0).eval()
    lengths = torch.tensor([41, 40, 17, 1, 0])
    x = torch.randn(len(lengths), 41, 32)
    with torch.no_grad():
        banded = attention(x, AttentionMask.build(lengths, 41, window))
        frames = torch.arange(41)
        near = (frames[:, None] - frames[None, :]).abs() <= window
        dense_mask = AttentionMask(AttentionMask.build(lengths, 41, 0).keys & near)
        dense = attention(x, dense_mask)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(banded[b, :n], dense[b, :n], atol=1e-5, rtol=0)
    assert torch.isfinite(banded).all()  # padding rows keep a key: no NaN to leak anywhere


def test_windowed_attention_memory_is_linear_in_length():
    """No T x T tensor: the band mask has 3 * window keys per frame, and a windowed encoder runs
    over an hour of subsampled frames (90,000) in one piece."""
    from asr.model import AttentionMask

    mask = AttentionMask.build(torch.tensor([90_000]), 90_000, 8)
    assert mask.band.numel() <= 90_008 * 3 * 8 and mask.keys.numel() == 90_000
    model = TransformerEncoder(tiny_config(attention_window=8, num_layers=1)).eval()
    with torch.no_grad():
        log_probs, lengths = model(torch.randn(1, 360_003, 20), torch.tensor([360_003]))
    assert log_probs.shape[1] == int(lengths[0]) == 90_000 and torch.isfinite(log_probs).all()
