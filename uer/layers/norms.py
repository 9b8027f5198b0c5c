"""Normalisation layers: LayerNorm (BERT, GPT-2), UER-py's own LayerNorm (checkpoints imported from
UER-py / TencentPretrain) and RMSNorm (T5, LLaMA)."""

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


class UerPyLayerNorm(nn.Module):
    """UER-py's ``uer/layers/layer_norm.py``: ``weight * (x - mean) / (std + eps) + bias`` with the
    *unbiased* standard deviation and eps added to the std, not to the variance.  Not
    ``torch.nn.LayerNorm`` (biased variance, eps inside the square root): on UER-py's checkpoints the
    two differ by ~1e-2, so models imported from UER-py (``"layernorm": "uer_py"``) use this one.
    UER-py names the parameters gamma / beta; ours are weight / bias like every other norm here."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in fp32 (as RMSNorm); on fp32 inputs this is UER-py's expression, op for op.
        y = x.float()
        mean = y.mean(-1, keepdim=True)
        std = y.std(-1, keepdim=True)
        out = self.weight.float() * (y - mean) / (std + self.eps) + self.bias.float()
        return out.to(x.dtype)


def build_norm(kind: str, hidden_size: int, eps: float, bias: bool = True) -> nn.Module:
    """``bias``: False drops the LayerNorm's bias (ModernBERT; config key ``layernorm_bias``); the
    config allows it only with "normal" (RMSNorm has none, UER-py's LayerNorm always has one)."""
    if kind in ("rms", "t5"):
        return RMSNorm(hidden_size, eps)
    if kind == "uer_py":
        return UerPyLayerNorm(hidden_size, eps)
    return nn.LayerNorm(hidden_size, eps=eps, bias=bias)
