"""DeBERTa (v2/v3) disentangled attention as a position scheme.

Relative distances i - j are mapped to log buckets (exact within +-bucket_size/2, logarithmic up
to ``max_position``), looked up in one relative-position table shared by every layer (normalised
by its own LayerNorm), and projected with each layer's own query/key weights (``share_att_key``).
The content-to-position and position-to-content scores become an additive bias for
``scaled_dot_product_attention``, whose softmax scale becomes 1/sqrt(3 * head_size).
"""

import math
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from uer.layers.attention import PositionScheme
from uer.layers.dropout import Dropout
from uer.layers.norms import build_norm


def make_log_bucket_position(relative_pos: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """DeBERTa-v2 log buckets: |r| < bucket_size/2 kept, larger distances compressed logarithmically
    so that |r| = max_position - 1 lands on bucket_size - 1 (same fp32 arithmetic as the original)."""
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    abs_pos = torch.where((relative_pos < mid) & (relative_pos > -mid),
                          torch.full_like(relative_pos, mid - 1), relative_pos.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
                         * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.to(log_pos.dtype), log_pos * sign).long()


def build_relative_position(q_len: int, k_len: int, bucket_size: int = -1, max_position: int = -1
                            ) -> torch.Tensor:
    """(q_len, k_len) long tensor of (bucketed) relative positions i - j."""
    rel = torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]
    if bucket_size > 0 and max_position > 0:
        rel = make_log_bucket_position(rel, bucket_size, max_position)
    return rel.long()


class DisentangledPosition(PositionScheme):
    """Shared relative-position embeddings + c2p / p2c terms (DeBERTa-v2 with share_att_key=True,
    pos_att_type = c2p|p2c).  One instance per encoder; layers pass it to their attention."""

    def __init__(self, hidden_size: int, max_relative_positions: int, position_buckets: int = 256,
                 norm_rel_ebd: str = "layer_norm", layernorm: str = "normal", layernorm_eps: float = 1e-7,
                 dropout: float = 0.0):
        super().__init__()
        if max_relative_positions < 1:
            raise ValueError("max_relative_positions must be positive")
        self.position_buckets = position_buckets
        self.max_relative_positions = max_relative_positions
        self.att_span = position_buckets if position_buckets > 0 else max_relative_positions
        self.embedding = nn.Embedding(2 * self.att_span, hidden_size)
        self.norm = build_norm(layernorm, hidden_size, layernorm_eps) if norm_rel_ebd == "layer_norm" else None
        self.dropout = Dropout(dropout)
        self.scale_factor = 3          # content-to-content + c2p + p2c
        self._index_cache: Dict[Tuple[int, int, str], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def relative_position(self, q_len: int, k_len: int) -> torch.Tensor:
        return build_relative_position(q_len, k_len, self.position_buckets, self.max_relative_positions)

    def _indices(self, q_len: int, k_len: int, device):
        """Gather indices into the rows [lo, hi] of the table that these lengths actually use, and
        those rows' ids (looked up through the embedding's forward, so ZeRO-3 gathers the table)."""
        key = (q_len, k_len, str(device))
        hit = self._index_cache.get(key)
        if hit is None:
            span = self.att_span
            c2p = torch.clamp(self.relative_position(q_len, k_len) + span, 0, 2 * span - 1)    # (Lq, Lk)
            p2c = torch.clamp(-self.relative_position(k_len, q_len) + span, 0, 2 * span - 1)   # (Lk, Lq)
            lo = int(min(c2p.min(), p2c.min()))
            hi = int(max(c2p.max(), p2c.max()))
            rows = torch.arange(lo, hi + 1)
            hit = ((c2p - lo).to(device), (p2c - lo).to(device), rows.to(device))
            self._index_cache[key] = hit
        return hit

    def rel_embeddings(self, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The normalised relative-position table (or the given rows of it): (n, hidden)."""
        if rows is None:
            rows = torch.arange(2 * self.att_span, device=self.embedding.weight.device)
        rel = self.embedding(rows)
        return self.norm(rel) if self.norm is not None else rel

    def softmax_scale(self, head_size: int) -> float:
        return 1.0 / math.sqrt(head_size * self.scale_factor)

    def _position_heads(self, rows: torch.Tensor, attention, heads: int, head_size: int):
        """The used table rows projected by the layer's own query and key weights: (h, n, d) each."""
        rel = self.dropout(self.rel_embeddings(rows))                            # (n, H)
        n = rel.size(0)
        pos_q = attention.query(rel).view(n, heads, head_size).transpose(0, 1)   # (h, n, d)
        pos_k = attention.key(rel).view(n, heads, head_size).transpose(0, 1)
        return pos_q, pos_k

    def qk_bias(self, q: torch.Tensor, k: torch.Tensor, attention) -> torch.Tensor:
        batch, heads, q_len, head_size = q.shape
        k_len = k.size(2)
        c2p_idx, p2c_idx, rows = self._indices(q_len, k_len, q.device)
        pos_q, pos_k = self._position_heads(rows, attention, heads, head_size)
        c2p = torch.matmul(q, pos_k.transpose(-1, -2))                           # (B, h, Lq, n)
        c2p = torch.gather(c2p, -1, c2p_idx.expand(batch, heads, q_len, k_len))
        p2c = torch.matmul(k, pos_q.transpose(-1, -2))                           # (B, h, Lk, n)
        p2c = torch.gather(p2c, -1, p2c_idx.expand(batch, heads, k_len, q_len)).transpose(-1, -2)
        return (c2p + p2c) * self.softmax_scale(head_size)

    # -- queries at selected positions only (the enhanced mask decoder) ----------------------------
    def selected_query_terms(self, k: torch.Tensor, attention, positions: torch.Tensor):
        """Everything of the bias that does not depend on the queries, for queries that sit at
        ``positions`` (B, P) of a sequence whose keys are ``k`` (B, h, L, d): the projected position
        keys, the c2p gather index (B, 1, P, L) and the p2c term (B, h, P, L), unscaled.
        Computed once and reused by every decoder pass (same keys, same layer weights)."""
        batch, heads, length, head_size = k.shape
        c2p_idx, p2c_idx, rows = self._indices(length, length, k.device)
        pos_q, pos_k = self._position_heads(rows, attention, heads, head_size)
        count = positions.size(1)
        c2p_sel = c2p_idx[positions].unsqueeze(1)                                 # (B, 1, P, L)
        p2c_sel = p2c_idx.t()[positions].transpose(1, 2).unsqueeze(1)             # (B, 1, L, P)
        p2c = torch.matmul(k, pos_q.transpose(-1, -2))                            # (B, h, L, n)
        p2c = torch.gather(p2c, -1, p2c_sel.expand(batch, heads, length, count)).transpose(-1, -2)
        return pos_k, c2p_sel, p2c

    def selected_query_bias(self, q: torch.Tensor, terms) -> torch.Tensor:
        """The additive bias (B, h, P, L) for queries ``q`` (B, h, P, d) at the positions given to
        ``selected_query_terms``: equal to rows ``positions`` of ``qk_bias`` over the full sequence."""
        pos_k, c2p_sel, p2c = terms
        batch, heads, count, head_size = q.shape
        c2p = torch.matmul(q, pos_k.transpose(-1, -2))                            # (B, h, P, n)
        c2p = torch.gather(c2p, -1, c2p_sel.expand(batch, heads, count, p2c.size(-1)))
        return (c2p + p2c) * self.softmax_scale(head_size)
