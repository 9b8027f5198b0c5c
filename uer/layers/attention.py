"""Multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``: self-attention,
cross-attention (keys/values from another sequence, e.g. the encoder output) and incremental
decoding with a key/value cache, in one module (HF's ``encoder_hidden_states`` / ``past_key_value``).

Position schemes do not re-implement attention: a scheme may rotate q/k (rotary), return an
additive bias (T5 buckets, ALiBi), or compute one from q and k and choose the softmax scale
(DeBERTa's disentangled attention); absolute positions live in the embedding and need none of these.
With a cache the queries are the last ``q_len`` of the ``k_len`` positions, and ``bias`` is asked
for exactly that block (a scheme reads the offset as ``k_len - q_len``, or the ``Positions`` given).

Rotation happens to the *new* keys, before they join the cache, at each token's own position
(``Positions.query``: per row, so a left-padded prompt's first real token is at 0): cached keys are
stored rotated and never rotated again.  Grouped-query attention (``kv_heads_num`` < heads) projects
and caches ``kv_heads`` key/value heads, each serving heads / kv_heads query heads.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from uer.layers.dropout import scaled_dot_product_attention
from uer.layers.masks import AttentionMask

# SDPA broadcasts key/value heads over query groups itself from torch 2.5 (``enable_gqa``).
NATIVE_GQA = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)


@dataclass
class Positions:
    """Where the tokens of one attention call sit: ``query`` (B or 1, Lq) the positions of this
    call's tokens (the new keys have the same), ``key`` (B or 1, Lk) those of every key, cached ones
    first.  Without it a call's tokens follow the cached ones: ``past .. past + Lq - 1``."""
    query: torch.Tensor
    key: torch.Tensor

    @staticmethod
    def following(past: int, length: int, device) -> "Positions":
        return Positions(torch.arange(past, past + length, device=device)[None],
                         torch.arange(past + length, device=device)[None])


class PositionScheme(nn.Module):
    """Interface for attention-level position schemes."""

    def rotate(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
        """q (B, h, L, d), the new keys k (B, kv_h, L, d) and their positions (B or 1, L)."""
        return q, k

    def bias(self, q_len: int, k_len: int, device, positions: Optional[Positions] = None
             ) -> Optional[torch.Tensor]:
        """An additive bias (B or 1, h, q_len, k_len) on the scaled scores; None: no bias."""
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
                 bias: bool = True, scale: Optional[float] = None, kv_heads_num: int = 0,
                 qkv_bias: Optional[bool] = None):
        """``kv_heads_num``: key/value heads (0: heads_num; grouped-query attention when fewer);
        ``qkv_bias``: biases of the q/k/v projections when they differ from the output's (Qwen2)."""
        super().__init__()
        kv_heads_num = kv_heads_num or heads_num
        if heads_num % kv_heads_num:
            raise ValueError(f"kv_heads_num {kv_heads_num} must divide heads_num {heads_num}")
        qkv_bias = bias if qkv_bias is None else qkv_bias
        self.scale = scale
        self.heads_num, self.kv_heads_num, self.head_size = heads_num, kv_heads_num, head_size
        self.query = nn.Linear(hidden_size, heads_num * head_size, bias=qkv_bias)
        self.key = nn.Linear(hidden_size, kv_heads_num * head_size, bias=qkv_bias)
        self.value = nn.Linear(hidden_size, kv_heads_num * head_size, bias=qkv_bias)
        self.output = nn.Linear(heads_num * head_size, hidden_size, bias=bias)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, heads, self.head_size).transpose(1, 2)  # (B, heads, L, d)

    def _keys_values(self, x: torch.Tensor, kv: Optional[torch.Tensor], cache: Optional[AttentionCache],
                     q: torch.Tensor, position: Optional[PositionScheme], positions: Optional[Positions]):
        """Queries and the projected keys and values: of ``x`` (self-attention; rotated by the position
        scheme at their own positions, then appended to the cache) or of ``kv`` (cross-attention;
        computed once and kept in the cache)."""
        if kv is not None:
            if cache is not None and cache.k is not None:
                return q, cache.k, cache.v
            k, v = self._heads(self.key(kv), self.kv_heads_num), self._heads(self.value(kv), self.kv_heads_num)
        else:
            k, v = self._heads(self.key(x), self.kv_heads_num), self._heads(self.value(x), self.kv_heads_num)
            if position is not None:
                q, k = position.rotate(q, k, positions.query)
            if cache is not None and cache.k is not None:
                k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)
        if cache is not None:
            cache.k, cache.v = k, v
        return q, k, v

    def forward(self, x: torch.Tensor, mask: AttentionMask, position: Optional[PositionScheme] = None,
                kv: Optional[torch.Tensor] = None, cache: Optional[AttentionCache] = None,
                positions: Optional[Positions] = None) -> torch.Tensor:
        """x (B, Lq, H) -> (B, Lq, H).  ``kv`` (B, Lk, H): the key/value source for cross-attention
        (None: ``x``).  ``cache``: this layer's AttentionCache for incremental decoding, updated in
        place.  ``mask`` covers the (Lq, Lk) block actually attended (cached keys included).
        ``positions``: the tokens' positions for the position scheme (None: following the cache)."""
        q = self._heads(self.query(x), self.heads_num)
        if position is not None and positions is None:
            past = cache.length if (cache is not None and kv is None) else 0
            positions = Positions.following(past, x.size(1), x.device)
        q, k, v = self._keys_values(x, kv, cache, q, position, positions)
        attn_mask, is_causal = mask.attn_mask, mask.is_causal
        extra = {} if self.scale is None else {"scale": self.scale}
        if position is not None:
            bias = position.bias(q.size(2), k.size(2), x.device, positions)
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
        if self.kv_heads_num != self.heads_num:
            # Native GQA only where no mask is given (the flash kernel takes it); with a mask the
            # memory-efficient kernel serves, which needs the key/value heads repeated per group.
            if NATIVE_GQA and attn_mask is None:
                extra["enable_gqa"] = True
            else:
                k, v = repeat_kv(k, self.heads_num), repeat_kv(v, self.heads_num)
        y = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                         dropout_p=self.dropout if self.training else 0.0, **extra)
        batch, _, length, _ = y.shape
        return self.output(y.transpose(1, 2).reshape(batch, length, -1))


def repeat_kv(x: torch.Tensor, heads_num: int) -> torch.Tensor:
    """(B, kv_h, L, d) -> (B, heads_num, L, d): key/value head j serves query heads
    j * g .. j * g + g - 1, g = heads_num / kv_h (the grouping of LLaMA-2 / Hugging Face)."""
    return x.repeat_interleave(heads_num // x.size(1), dim=1)
