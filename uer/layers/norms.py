"""Normalisation layers: LayerNorm (BERT, GPT-2) and RMSNorm (T5, LLaMA)."""

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Scale by the root mean square, no centring and no bias (T5 / LLaMA)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in fp32: bf16 squares of large activations lose too much precision.
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


def build_norm(kind: str, hidden_size: int, eps: float) -> nn.Module:
    if kind in ("rms", "t5"):
        return RMSNorm(hidden_size, eps)
    return nn.LayerNorm(hidden_size, eps=eps)
