"""Multi-head self-attention through ``torch.nn.functional.scaled_dot_product_attention``.

Position schemes do not re-implement attention: a scheme may rotate q/k (rotary), return an
additive bias (T5 buckets, ALiBi), or compute one from q and k and choose the softmax scale
(DeBERTa's disentangled attention); absolute positions live in the embedding and need none of these.
"""

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


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden_size: int, heads_num: int, head_size: int, dropout: float,
                 bias: bool = True):
        super().__init__()
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

    def forward(self, x: torch.Tensor, mask: AttentionMask,
                position: Optional[PositionScheme] = None) -> torch.Tensor:
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        attn_mask, is_causal = mask.attn_mask, mask.is_causal
        extra = {}
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
                    attn_mask = torch.ones(q.size(2), k.size(2), dtype=torch.bool, device=x.device).tril()
                    is_causal = False
                if attn_mask is not None:
                    bias = bias.masked_fill(~attn_mask, float("-inf"))
                attn_mask = bias.to(q.dtype)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0, **extra)
        batch, _, length, _ = y.shape
        return self.output(y.transpose(1, 2).reshape(batch, length, -1))
