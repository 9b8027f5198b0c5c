"""Multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``: self-attention,
cross-attention (keys/values from another sequence, e.g. the encoder output) and incremental
decoding with a key/value cache, in one module (HF's ``encoder_hidden_states`` / ``past_key_value``).

Position schemes do not re-implement attention: a scheme may rotate q/k (rotary), return an
additive bias (T5 buckets, ALiBi), or compute one from q and k and choose the softmax scale
(DeBERTa's disentangled attention); absolute positions live in the embedding and need none of these.
With a cache the queries are the last ``q_len`` of the ``k_len`` positions, and ``bias`` is asked
for exactly that block (a scheme reads the offset as ``k_len - q_len``).
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from uer.layers.masks import AttentionMask


class PositionScheme(nn.Module):
    """Interface for attention-level position schemes."""

    def rotate(self, q: torch.Tensor, k: torch.Tensor):
        return q, k

    def bias(self, q_len: int, k_len: int, device) -> Optional[torch.Tensor]:
        return None

    def qk_bias(self, q: torch.Tensor, k: torch.Tensor, attention: "MultiHeadAttention"
                ) -> Optional[torch.Tensor]:
        """An additive bias computed from the projected heads q, k (B, h, L, d), already multiplied
        by the softmax scale; ``attention`` is the calling layer, for schemes that project positions
        with its own weights (DeBERTa's shared key/query projections).  None: no bias."""
        return None

    def softmax_scale(self, head_size: int) -> Optional[float]:
        """The factor on q.k before softmax; None: SDPA's default 1/sqrt(head_size)."""
        return None


@dataclass
class AttentionCache:
    """Keys and values (B, h, L, d) of one attention layer during incremental decoding.  Self-attention
    appends each step's keys/values; cross-attention fills it on the first step and reuses it."""
    k: Optional[torch.Tensor] = None
    v: Optional[torch.Tensor] = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(2)


class MultiHeadAttention(nn.Module):
    """``scale``: the factor on q.k (None: 1/sqrt(head_size); T5 uses 1.0, its initialisation absorbs
    the scale); a position scheme's own ``softmax_scale`` wins over it."""

    def __init__(self, hidden_size: int, heads_num: int, head_size: int, dropout: float,
                 bias: bool = True, scale: Optional[float] = None):
        super().__init__()
        self.scale = scale
        inner = heads_num * head_size
        self.heads_num, self.head_size = heads_num, head_size
        self.query = nn.Linear(hidden_size, inner, bias=bias)
        self.key = nn.Linear(hidden_size, inner, bias=bias)
        self.value = nn.Linear(hidden_size, inner, bias=bias)
        self.output = nn.Linear(inner, hidden_size, bias=bias)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads_num, self.head_size).transpose(1, 2)  # (B, h, L, d)

    def _keys_values(self, x: torch.Tensor, kv: Optional[torch.Tensor], cache: Optional[AttentionCache]):
        """Projected keys and values: of ``x`` (self-attention; appended to the cache) or of ``kv``
        (cross-attention; computed once and kept in the cache)."""
        if kv is not None:
            if cache is not None and cache.k is not None:
                return cache.k, cache.v
            k, v = self._heads(self.key(kv)), self._heads(self.value(kv))
        else:
            k, v = self._heads(self.key(x)), self._heads(self.value(x))
            if cache is not None and cache.k is not None:
                k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)
        if cache is not None:
            cache.k, cache.v = k, v
        return k, v

    def forward(self, x: torch.Tensor, mask: AttentionMask, position: Optional[PositionScheme] = None,
                kv: Optional[torch.Tensor] = None, cache: Optional[AttentionCache] = None) -> torch.Tensor:
        """x (B, Lq, H) -> (B, Lq, H).  ``kv`` (B, Lk, H): the key/value source for cross-attention
        (None: ``x``).  ``cache``: this layer's AttentionCache for incremental decoding, updated in
        place.  ``mask`` covers the (Lq, Lk) block actually attended (cached keys included)."""
        q = self._heads(self.query(x))
        k, v = self._keys_values(x, kv, cache)
        attn_mask, is_causal = mask.attn_mask, mask.is_causal
        extra = {} if self.scale is None else {"scale": self.scale}
        if position is not None:
            q, k = position.rotate(q, k)
            bias = position.bias(q.size(2), k.size(2), x.device)
            qk_bias = position.qk_bias(q, k, self)
            if qk_bias is not None:
                bias = qk_bias if bias is None else bias + qk_bias
            scale = position.softmax_scale(self.head_size)
            if scale is not None:
                extra["scale"] = scale
            if bias is not None:
                # An additive bias and a boolean mask combine into one float mask.
                if is_causal:
                    q_len, k_len = q.size(2), k.size(2)   # queries are the last q_len positions
                    attn_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=x.device).tril(k_len - q_len)
                    is_causal = False
                if attn_mask is not None:
                    bias = bias.masked_fill(~attn_mask, float("-inf"))
                attn_mask = bias.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0, **extra)
        batch, _, length, _ = y.shape
        return self.output(y.transpose(1, 2).reshape(batch, length, -1))
