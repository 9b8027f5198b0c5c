"""Sliding-window (local) attention as a position scheme: ModernBERT's local layers.

A query sees the keys within ``window // 2`` positions on either side (|query - key| <= window / 2,
transformers' ModernBERT with ``local_attention`` = window); keys further away get -inf.  The band is
an additive bias built from the tokens' positions, so it works wherever a position scheme does (the
padded path and any path that hands the scheme per-sequence positions) and combines with the stack's
own scheme: ``LocalWindow`` wraps it (rotary with the local layers' theta, ALiBi ...) and delegates the
rotation, q/k bias and softmax scale to it.

Every layer of a stack asks for the band of the same Positions: it is built once per forward.

``CausalWindow`` is the decoder's one-sided window (Mistral's ``sliding_window``, Qwen2's upper layers): a
query sees itself and the ``window - 1`` keys before it (query - key < window, transformers'
``sliding_window_overlay``); the causal mask hides the keys after it.
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


class CausalWindow(LocalWindow):
    """Distances are counted in columns (cached keys first), as transformers counts them, not in position
    ids: left padding sits before a row's first real token and generated tokens follow one per column, so
    between real tokens the two agree, and a band that depends on the shape alone serves the whole batch.
    When no key can be ``window`` columns before a query (k_len <= window) there is no band at all, so
    training on sequences no longer than the window keeps SDPA's is_causal fast path."""

    def __init__(self, window: int, inner: Optional[PositionScheme] = None):
        PositionScheme.__init__(self)
        if window < 1:
            raise ValueError(f"the sliding window must be >= 1 token, got {window}")
        self.window = window
        self.inner = inner
        self._latest = None

    def band(self, q_len: int, k_len: int, device) -> Optional[torch.Tensor]:
        """(1, 1, Lq, Lk) fp32: 0 for keys fewer than ``window`` columns before the query, -inf for older
        ones; None when there are none.  The queries are the last ``q_len`` of the ``k_len`` columns."""
        if k_len <= self.window:
            return None
        if self._latest is not None and self._latest[0] == (q_len, k_len, device):
            return self._latest[1]
        query = torch.arange(k_len - q_len, k_len, device=device)[:, None]
        key = torch.arange(k_len, device=device)[None, :]
        band = torch.zeros(q_len, k_len, dtype=torch.float32, device=device)
        band = band.masked_fill(query - key >= self.window, float("-inf"))[None, None]
        self._latest = ((q_len, k_len, device), band)
        return band

    def bias(self, q_len: int, k_len: int, device, positions: Optional[Positions] = None):
        inner = self.inner.bias(q_len, k_len, device, positions) if self.inner is not None else None
        band = self.band(q_len, k_len, device)
        if band is None or inner is None:
            return inner if band is None else band
        return inner + band


def is_local_layer(config, index: int) -> bool:
    """ModernBERT's pattern: with a window, layer i is global when i % global_attention_every_n_layers
    == 0 (layers 0, 3, 6 ... for 3), local otherwise; 0 makes every layer local.  A causal sliding window
    (``sliding_window``) covers layers ``sliding_window_from_layer`` and up (Mistral: all; Qwen2: its
    ``max_window_layers`` and up)."""
    if getattr(config, "sliding_window", 0):       # any object with the ModernBERT keys serves without it
        return index >= config.sliding_window_from_layer
    if not config.local_attention_window:
        return False
    every = config.global_attention_every_n_layers
    return every == 0 or index % every != 0


def build_local_window(config, global_position: Optional[PositionScheme]) -> Optional[LocalWindow]:
    """The local layers' scheme (None without a window): the band around the stack's scheme, or around a
    rotary scheme of its own when ``local_rope_theta`` differs from ``rope_theta`` (ModernBERT: 10000
    locally, 160000 globally).  A causal ``sliding_window`` wraps the stack's scheme as it is."""
    if getattr(config, "sliding_window", 0):
        return CausalWindow(config.sliding_window, global_position)
    if not config.local_attention_window:
        return None
    inner = global_position
    theta = config.local_rope_theta
    if config.rotary_position_embedding and theta and theta != config.rope_theta:
        s = config.rope_scaling
        inner = RotaryPosition(config.head_size, theta, s.type, s.factor, s.low_freq_factor, s.high_freq_factor,
                               s.original_max_position_embeddings or config.max_seq_length)
    return LocalWindow(config.local_attention_window, inner)
