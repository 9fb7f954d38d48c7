"""Acoustic encoders: features [B, T, F] -> frame log-probabilities [B, T', V].

Conv2d subsampling shortens the sequence, layers with rotary position embeddings (on
`F.scaled_dot_product_attention`) contextualize it, and a linear layer with log-softmax gives
emissions for the graph losses in `asr.losses` and for decoding. The layers are pre-LN
transformer layers or conformer layers (Gulati et al. 2020: macaron feed-forwards around
self-attention and a depthwise convolution module), as `EncoderConfig.architecture` says.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import config as settings

logger = logging.getLogger("asr.model")

# Strides of the two 3x3 convolutions for each supported subsampling factor.
_SUBSAMPLING_STRIDES = {4: (2, 2), 2: (2, 1), 1: (1, 1)}
ARCHITECTURES = ("transformer", "conformer")


@dataclass
class EncoderConfig:
    """Sizes of a `TransformerEncoder`; saved with checkpoints through `to_dict`/`from_dict`.

    `architecture` picks the layers: "transformer" (pre-LN self-attention + feed-forward) or
    "conformer" (half-step feed-forward, self-attention, convolution module with a depthwise
    kernel of `conv_kernel` frames, half-step feed-forward, LayerNorm): the convolution gives
    every layer a local view of its neighbours, which small corpora learn from far faster than
    from attention alone.

    `conv_channels=None` means `d_model` channels in the subsampling convolutions.
    `attention_window=w > 0` lets each frame attend only to frames at most w (subsampled) frames
    away: a locality prior that keeps small models on small corpora from learning alignments
    that drift away from the audio (CTC is free to emit anywhere; global attention lets it).
    0 means full attention.
    `blank_bias` initializes the output bias of token 0 (the CTC blank): a positive value
    (e.g. 3) starts training from all-blank emissions, the state CTC training passes through
    anyway; from uniform emissions small models on small corpora sometimes settle instead on
    labelling silence with a word and never learn to separate the words.
    """

    vocab_size: int | None = None  # the tokenizer's; None in a training config, filled in by `with_vocab`
    input_dim: int = 80
    d_model: int = 144
    num_heads: int = 4
    num_layers: int = 6
    ff_dim: int = 576
    dropout: float = 0.1
    subsampling: int = 4
    conv_channels: int | None = None
    attention_window: int = 0
    blank_bias: float = 0.0
    architecture: str = "transformer"
    conv_kernel: int = 15

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be a positive odd number (centred on its frame), got {self.conv_kernel}")
        if self.subsampling not in _SUBSAMPLING_STRIDES:
            raise ValueError(f"subsampling must be one of {sorted(_SUBSAMPLING_STRIDES)}, got {self.subsampling}")
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must split into {self.num_heads} heads of even size (rotary embeddings)"
            )
        if self.attention_window < 0:
            raise ValueError(f"attention_window must be >= 0 (0: full attention), got {self.attention_window}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def with_vocab(self, vocab_size: int) -> EncoderConfig:
        """This config for a model with `vocab_size` outputs (blank included)."""
        return dataclasses.replace(self, vocab_size=vocab_size)

    def to_dict(self) -> dict:
        """Plain dict of all fields (JSON-serializable), the inverse of `from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EncoderConfig:
        """Config from a `to_dict` result; unknown keys are an error rather than silently dropped."""
        return settings.from_dict(cls, values, "EncoderConfig")


class Conv2dSubsampling(nn.Module):
    """Two 3x3 conv2d + ReLU layers over (time, frequency), then a linear layer to `d_model` and
    a LayerNorm.

    ESPnet/icefall style without padding, so an output frame only sees input frames of its own
    utterance: outputs within `output_lengths(lengths)` do not depend on batch padding.
    """

    def __init__(self, input_dim: int, d_model: int, channels: int, factor: int = 4):
        super().__init__()
        self.strides = _SUBSAMPLING_STRIDES[factor]
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=self.strides[0]),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=self.strides[1]),
            nn.ReLU(),
        )
        out_freq = int(self.output_lengths(torch.tensor(input_dim)))
        if out_freq < 1:
            raise ValueError(f"input_dim {input_dim} is too small for two 3x3 convolutions")
        self.linear = nn.Linear(channels * out_freq, d_model)
        # Unit-scale frames into the residual stream: without it the input (std ~0.1 at init) is
        # swamped by the random attention/FFN outputs, and small-data CTC training often stalls.
        self.norm = nn.LayerNorm(d_model)
        self.min_length = 1  # shortest input giving one output frame: invert each layer
        for stride in reversed(self.strides):
            self.min_length = (self.min_length - 1) * stride + 3

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Exact output length of each input length (0 for inputs shorter than `min_length`)."""
        for stride in self.strides:
            lengths = torch.div(lengths - 3, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, F] -> [B, output_lengths(T), d_model]."""
        if features.shape[1] < self.min_length:
            raise ValueError(f"need at least {self.min_length} input frames, got {features.shape[1]}")
        x = self.conv(features.unsqueeze(1))  # [B, C, T', F']
        return self.norm(self.linear(x.transpose(1, 2).flatten(2)))


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, Su et al. 2021) for queries and keys [..., T, head_dim].

    Rotating each pair of channels by an angle proportional to the position makes q.k depend
    only on the relative offset of the two frames; there is no table, so no length limit and no
    parameters, and it works with fused attention kernels (unlike an additive relative bias).
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotates x [..., T, head_dim] at positions 0..T-1 (rotate-half channel pairing)."""
        positions = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freq.float())  # [T, head_dim / 2]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary q/k on `F.scaled_dot_product_attention`, over the
    whole sequence (`AttentionMask.keys`) or within a band of frames (`AttentionMask.window`)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(d_model // num_heads)

    def forward(self, x: torch.Tensor, mask: AttentionMask) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]."""
        batch, time, dim = x.shape
        q, k, v = self.qkv(x).view(batch, time, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.rotary(q), self.rotary(k)
        dropout = self.dropout if self.training else 0.0
        if mask.window:
            y = _banded_attention(q, k, v, mask, dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.keys, dropout_p=dropout)
        return self.out(y.transpose(1, 2).reshape(batch, time, dim))


@dataclass
class AttentionMask:
    """Which keys each query may attend to, in memory linear in T: `keys` [B, 1, 1, T] marks the
    frames of each utterance (at least its first, so no row is empty); with `window` > 0 a query
    also sees only keys at most `window` frames away, and `band` [B, 1, blocks, window, 3 * window]
    holds that for `_banded_attention`'s blocks."""

    keys: torch.Tensor
    window: int = 0
    band: torch.Tensor | None = None

    @classmethod
    def build(cls, lengths: torch.Tensor, time: int, window: int) -> AttentionMask:
        frames = torch.arange(time, device=lengths.device)
        keys = (frames < lengths.clamp(min=1)[:, None])[:, None, None, :]
        if not window:
            return cls(keys)
        blocks = -(-time // window)
        query = torch.arange(blocks * window, device=lengths.device).view(blocks, window, 1)
        key = query[:, :1] - window + torch.arange(3 * window, device=lengths.device)  # [blocks, 1, 3w]
        key_ok = F.pad(keys[:, 0, 0], (window, (blocks + 1) * window - time))  # [B, (blocks + 2) w]
        key_ok = key_ok.unfold(1, 3 * window, window)[:, :, None, :]  # [B, blocks, 1, 3w]
        # A query past the end (padding) keeps itself as a key, so its row is never empty (no NaN).
        band = ((query - key).abs() <= window) & key_ok | (query == key)
        return cls(keys, window, band[:, None])


def _banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: AttentionMask,
                      dropout: float) -> torch.Tensor:
    """Attention of each frame to the frames at most `mask.window` away, in blocks of `window`
    queries against the 3 * window keys around them: memory O(T * window), no T x T matrix."""
    window = mask.window
    batch, heads, time, dim = q.shape
    blocks = mask.band.shape[2]
    pad = blocks * window - time
    queries = F.pad(q, (0, 0, 0, pad)).view(batch, heads, blocks, window, dim)
    keys, values = (F.pad(t, (0, 0, window, pad + window)).unfold(2, 3 * window, window).transpose(-1, -2)
                    for t in (k, v))
    y = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask.band, dropout_p=dropout)
    return y.reshape(batch, heads, blocks * window, dim)[:, :, :time]


def feed_forward(d_model: int, ff_dim: int, dropout: float) -> nn.Sequential:
    """Position-wise feed-forward block: linear, SiLU, dropout, linear."""
    return nn.Sequential(nn.Linear(d_model, ff_dim), nn.SiLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer: x + drop(MHSA(LN(x))), then x + drop(FFN(LN(x)))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, num_heads, dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = feed_forward(d_model, ff_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: AttentionMask, valid: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        return x + self.dropout(self.ff(self.ff_norm(x)))


class ConvolutionModule(nn.Module):
    """Conformer convolution module: pointwise conv + GLU, depthwise conv over time, LayerNorm,
    SiLU, pointwise conv. Padding frames are zeroed before the depthwise conv, so valid frames
    never see them (LayerNorm, not BatchNorm, for the same reason: no statistics over the batch)."""

    def __init__(self, d_model: int, kernel: int):
        super().__init__()
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, T, D], valid [B, T] boolean."""
        x = F.glu(self.pointwise_in(x), dim=-1).masked_fill(~valid[..., None], 0.0)
        x = self.depthwise(x.transpose(1, 2)).transpose(1, 2)
        return self.pointwise_out(F.silu(self.norm(x)))


class ConformerLayer(nn.Module):
    """Conformer block: x + 1/2 FFN, + MHSA, + convolution module, + 1/2 FFN (each pre-LN, with
    dropout on its output), then LayerNorm."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float, kernel: int):
        super().__init__()
        self.ff1_norm, self.ff1 = nn.LayerNorm(d_model), feed_forward(d_model, ff_dim, dropout)
        self.attn_norm, self.attn = nn.LayerNorm(d_model), SelfAttention(d_model, num_heads, dropout)
        self.conv_norm, self.conv = nn.LayerNorm(d_model), ConvolutionModule(d_model, kernel)
        self.ff2_norm, self.ff2 = nn.LayerNorm(d_model), feed_forward(d_model, ff_dim, dropout)
        self.final_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: AttentionMask, valid: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.dropout(self.ff1(self.ff1_norm(x)))
        x = x + self.dropout(self.attn(self.attn_norm(x), mask))
        x = x + self.dropout(self.conv(self.conv_norm(x), valid))
        x = x + 0.5 * self.dropout(self.ff2(self.ff2_norm(x)))
        return self.final_norm(x)


class TransformerEncoder(nn.Module):
    """The acoustic model: subsampling, rotary transformer or conformer layers (as
    `config.architecture` says), final LayerNorm, linear output and log-softmax over
    `vocab_size` tokens (blank included)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("the encoder config has no vocab_size: set it with config.with_vocab(tokenizer.vocab_size)")
        self.config = config
        self.subsampling = Conv2dSubsampling(
            config.input_dim, config.d_model, config.conv_channels or config.d_model, config.subsampling
        )
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(self._layer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model)
        self.output = nn.Linear(config.d_model, config.vocab_size)
        with torch.no_grad():
            self.output.bias[0] += config.blank_bias
        logger.info("%s encoder: %s parameters, config %s", config.architecture, f"{self.num_parameters():,}",
                    config.to_dict())

    @staticmethod
    def _layer(config: EncoderConfig) -> nn.Module:
        if config.architecture == "conformer":
            return ConformerLayer(config.d_model, config.num_heads, config.ff_dim, config.dropout, config.conv_kernel)
        return EncoderLayer(config.d_model, config.num_heads, config.ff_dim, config.dropout)

    def num_parameters(self) -> int:
        """Total number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of output frames for each input length."""
        return self.subsampling.output_lengths(lengths)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, F], lengths [B] -> (log_probs [B, T', V], out_lengths [B]).

        Frames past an utterance's out_length are padding: their values are unspecified, and
        they are masked out as attention keys, so valid frames do not depend on them.
        """
        x = self.dropout(self.subsampling(features))
        out_lengths = self.output_lengths(lengths.to(x.device))
        valid = torch.arange(x.shape[1], device=x.device) < out_lengths[:, None]
        mask = AttentionMask.build(out_lengths, x.shape[1], self.config.attention_window)
        for layer in self.layers:
            x = layer(x, mask, valid)
        return self.output(self.final_norm(x)).log_softmax(dim=-1), out_lengths
