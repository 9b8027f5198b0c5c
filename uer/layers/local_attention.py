"""Sliding-window (local) attention as a position scheme: ModernBERT's local layers.

A query sees the keys within ``window // 2`` positions on either side (|query - key| <= window / 2,
transformers' ModernBERT with ``local_attention`` = window); keys further away get -inf.  The band is
an additive bias built from the tokens' positions, so it works wherever a position scheme does (the
padded path and any path that hands the scheme per-sequence positions) and combines with the stack's
own scheme: ``LocalWindow`` wraps it (rotary with the local layers' theta, ALiBi ...) and delegates the
rotation, q/k bias and softmax scale to it.

Every layer of a stack asks for the band of the same Positions: it is built once per forward.
"""

from typing import Optional

import torch

from uer.layers.attention import PositionScheme, Positions
from uer.layers.rotary import RotaryPosition


class LocalWindow(PositionScheme):
    def __init__(self, window: int, inner: Optional[PositionScheme] = None):
        super().__init__()
        if window < 2 or window % 2:
            raise ValueError(f"the local attention window must be an even number >= 2, got {window}")
        self.half_window = window // 2
        self.inner = inner
        self._latest = None

    def rotate(self, q, k, positions):
        return self.inner.rotate(q, k, positions) if self.inner is not None else (q, k)

    def band(self, positions: Positions) -> torch.Tensor:
        """(B or 1, 1, Lq, Lk) fp32: 0 inside the window, -inf outside."""
        versions = (positions.query._version, positions.key._version)
        if self._latest is not None and self._latest[0] is positions and self._latest[1] == versions:
            return self._latest[2]
        distance = (positions.query[:, :, None] - positions.key[:, None, :]).abs()     # (B, Lq, Lk)
        band = torch.zeros(distance.shape, dtype=torch.float32, device=distance.device)
        band = band.masked_fill(distance > self.half_window, float("-inf"))[:, None]
        self._latest = (positions, versions, band)
        return band

    def bias(self, q_len: int, k_len: int, device, positions: Optional[Positions] = None):
        if positions is None:
            positions = Positions.following(k_len - q_len, q_len, device)
        inner = self.inner.bias(q_len, k_len, device, positions) if self.inner is not None else None
        band = self.band(positions)
        return band if inner is None else inner + band

    def qk_bias(self, q, k, attention):
        return self.inner.qk_bias(q, k, attention) if self.inner is not None else None

    def softmax_scale(self, head_size: int):
        return self.inner.softmax_scale(head_size) if self.inner is not None else None


def is_local_layer(config, index: int) -> bool:
    """ModernBERT's pattern: with a window, layer i is global when i % global_attention_every_n_layers
    == 0 (layers 0, 3, 6 ... for 3), local otherwise; 0 makes every layer local."""
    if not config.local_attention_window:
        return False
    every = config.global_attention_every_n_layers
    return every == 0 or index % every != 0


def build_local_window(config, global_position: Optional[PositionScheme]) -> Optional[LocalWindow]:
    """The local layers' scheme (None without a window): the band around the stack's scheme, or around a
    rotary scheme of its own when ``local_rope_theta`` differs from ``rope_theta`` (ModernBERT: 10000
    locally, 160000 globally)."""
    if not config.local_attention_window:
        return None
    inner = global_position
    theta = config.local_rope_theta
    if config.rotary_position_embedding and theta and theta != config.rope_theta:
        s = config.rope_scaling
        inner = RotaryPosition(config.head_size, theta, s.type, s.factor, s.low_freq_factor, s.high_freq_factor,
                               s.original_max_position_embeddings or config.max_seq_length)
    return LocalWindow(config.local_attention_window, inner)
