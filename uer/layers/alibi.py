"""ALiBi (Press et al. 2022, "Train Short, Test Long"; BLOOM) as a position scheme: no position
embeddings; each head adds ``-slope * |query position - key position|`` to its attention scores.

Slopes: for n heads a power of two, the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8); otherwise
the sequence of the largest power of two p < n, followed by every other slope of the sequence for 2p
(the paper's code, as BLOOM).  BLOOM writes the bias as ``slope * key position``; under a causal mask
it differs from ours by ``slope * query position``, the same for every key of a row, which the softmax
cancels.  The distance form is also right for bidirectional attention and needs no padding offsets.
"""

import math
from typing import Optional

import torch

from uer.layers.attention import PositionScheme, Positions


def alibi_slopes(heads_num: int) -> torch.Tensor:
    """(heads_num,) fp32 slopes, the largest first."""
    def geometric(n: int):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    power = 2 ** int(math.floor(math.log2(heads_num)))
    slopes = geometric(power)
    if power < heads_num:
        slopes += geometric(2 * power)[0::2][: heads_num - power]
    return torch.tensor(slopes, dtype=torch.float32)


class AlibiPosition(PositionScheme):
    """``bias(q_len, k_len, device, positions)`` -> (B or 1, heads, q_len, k_len), fp32; the queries
    are the last q_len of the k_len positions unless ``positions`` (per row, left padding) says otherwise."""

    def __init__(self, heads_num: int):
        super().__init__()
        self.heads_num = heads_num
        self.slopes = alibi_slopes(heads_num)       # a plain attribute: nothing to save or to cast
        # Every layer of a stack asks for the bias of the same Positions: computed once per forward
        # (the latest Positions is held, so its identity cannot be reused by another object).
        self._latest = None

    def bias(self, q_len: int, k_len: int, device, positions: Optional[Positions] = None) -> torch.Tensor:
        if positions is None:
            positions = Positions.following(k_len - q_len, q_len, device)
        versions = (positions.query._version, positions.key._version)
        if self._latest is not None and self._latest[0] is positions and self._latest[1] == versions:
            return self._latest[2]
        distance = (positions.query[:, :, None] - positions.key[:, None, :]).abs().float()   # (B, Lq, Lk)
        slopes = self.slopes.to(device)[None, :, None, None]
        bias = -slopes * distance[:, None]
        self._latest = (positions, versions, bias)
        return bias


def build_alibi_position(config) -> Optional[AlibiPosition]:
    """The stack's ALiBi scheme when ``alibi_position_embedding`` is on, else None."""
    return AlibiPosition(config.heads_num) if config.alibi_position_embedding else None
