"""Dropout with a cheaper mask on the CPU, for hidden states and for attention probabilities.

torch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``: a 32-bit random number
and a float comparison each) and keeps a float mask: on BERT-small it was 10% of a training step,
more than attention's matrix products.  Here one 64-bit draw from the same default generator gives
four 16-bit lanes, each compared with the drop threshold, and the mask is kept as bools; the kept
values are scaled by 1 / (1 - p) in the same pass.  The drop probability is rounded to a multiple
of 1/65536 (0.1 becomes 0.100006) and the scale uses the rounded value, so the expectation is
exact.  Seeded runs stay reproducible and resume exactly: the draws come from torch's default CPU
generator, whose state checkpoints carry.

On a GPU (and for p = 0 or in eval) this is ``F.dropout`` / SDPA's own dropout: CUDA's Philox
kernels are already fused and cheap.
"""

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

_LANES = 65536


def _threshold(p: float) -> "tuple[int, float]":
    """The int16 threshold below which a lane drops its element, and the keep scale."""
    dropped = min(max(round(p * _LANES), 0), _LANES - 1)
    return dropped - _LANES // 2, _LANES / (_LANES - dropped)


def keep_mask(shape, p: float, device=None) -> "tuple[torch.Tensor, float]":
    """A bool mask of ``shape`` keeping each element with probability 1 - p (rounded to 1/65536),
    and the scale of the kept elements."""
    threshold, scale = _threshold(p)
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2 ** 63, 2 ** 63 - 1)
    return (bits.view(torch.int16)[:n] >= threshold).view(shape), scale


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale; the bool mask is all backward keeps."""

    @staticmethod
    def forward(ctx, x, mask, scale: float):
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        mask, = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the cheap mask on the CPU."""
    if not training or p <= 0.0 or x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    mask, scale = keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, mask, scale)


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (no parameters, no state) using :func:`dropout`."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def needs_own_attention_dropout(q: torch.Tensor, p: float) -> bool:
    """SDPA's CPU path draws its attention dropout with ``bernoulli_``: take it over on the CPU."""
    return p > 0.0 and q.device.type == "cpu" and torch.is_grad_enabled()


def attention_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor],
                           is_causal: bool, p: float, scale: Optional[float] = None) -> torch.Tensor:
    """What ``F.scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal, scale)`` computes on its
    CPU math path (q (B, h, Lq, d), k/v (B, h, Lk, d); a bool mask keeps True, a float mask adds;
    rows with every key masked give zeros, as SDPA's safe softmax), with the cheap dropout mask."""
    scale = q.size(-1) ** -0.5 if scale is None else scale
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    masked = attn_mask is not None or is_causal
    if is_causal:
        q_len, k_len = q.size(-2), k.size(-2)
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=q.device).tril(k_len - q_len)
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
            else scores + attn_mask
    probs = torch.softmax(scores, dim=-1)
    if masked:
        probs = probs.nan_to_num(0.0)           # a query with no key left: zeros, not NaN
    mask, keep_scale = keep_mask(probs.shape, p, probs.device)
    return torch.matmul(_MaskedScale.apply(probs, mask, keep_scale), v)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: Optional[float] = None,
                                 enable_gqa: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` (same arguments), except that training on the CPU with
    attention dropout takes :func:`attention_with_dropout`."""
    if not needs_own_attention_dropout(q, dropout_p):
        extra = {} if scale is None else {"scale": scale}
        if enable_gqa:
            extra["enable_gqa"] = True
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, **extra)
    if k.size(1) != q.size(1):                  # grouped keys/values serve their query heads
        k, v = (t.repeat_interleave(q.size(1) // t.size(1), dim=1) for t in (k, v))
    return attention_with_dropout(q, k, v, attn_mask, is_causal, dropout_p, scale)
