"""T5's relative-position buckets as a position scheme: one learned scalar per (bucket, head), added to
the attention logits, shared by every layer of a stack (T5 keeps the table in the first layer only).

Distances ``key - query`` are bucketed: half of the buckets are exact small distances, the other half
logarithmically wider bins up to ``max_distance``; bidirectional (encoder) buckets split the range by
sign, causal (decoder) ones only see the past.  Cross-attention has no position bias in T5.
"""

import math
from typing import Dict, Tuple

import torch
from torch import nn

from uer.layers.attention import PositionScheme


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """Mesh TensorFlow's bucketing of ``relative_position`` = key position - query position (any
    integer tensor) into [0, num_buckets); the same arithmetic as transformers' T5Attention."""
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)        # future keys -> 0 (masked anyway)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(0) would be -inf for distance 0; those positions take the exact branch.
    large = max_exact + (torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class T5RelativePosition(PositionScheme):
    """``bias(q_len, k_len)`` -> (1, heads, q_len, k_len); the queries are the last ``q_len`` of the
    ``k_len`` positions (full passes: q_len == k_len; a cached decoding step: q_len 1)."""

    def __init__(self, heads_num: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        if num_buckets < 4 or max_distance <= num_buckets // 2:
            raise ValueError("relative_attention_buckets_num must be ≥ 4 and relative_attention_max_distance "
                             "greater than half of it")
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, num_buckets, max_distance
        self.embedding = nn.Embedding(num_buckets, heads_num)
        self._buckets: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def buckets(self, q_len: int, k_len: int, device) -> torch.Tensor:
        key = (q_len, k_len, str(device))
        hit = self._buckets.get(key)
        if hit is None:
            query = torch.arange(k_len - q_len, k_len)[:, None]
            memory = torch.arange(k_len)[None, :]
            hit = relative_position_bucket(memory - query, self.bidirectional, self.num_buckets,
                                           self.max_distance).to(device)
            self._buckets[key] = hit
        return hit

    def bias(self, q_len: int, k_len: int, device, positions=None) -> torch.Tensor:
        # ``positions`` unused: T5 sequences are never left-padded, the last q_len of k_len suffice.
        # Looked up through the embedding's forward (so a partitioned table is gathered).
        return self.embedding(self.buckets(q_len, k_len, device)).permute(2, 0, 1).unsqueeze(0)


def build_relative_position(config, bidirectional: bool, heads_num: int = 0):
    """The stack's T5 scheme when ``relative_position_embedding`` is on, else None."""
    if not config.relative_position_embedding:
        return None
    return T5RelativePosition(heads_num or config.heads_num, bidirectional,
                              config.relative_attention_buckets_num, config.relative_attention_max_distance)
