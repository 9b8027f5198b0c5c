"""Sequence pooling and the classification head shared by the cls target and fine-tuning."""

import torch
from torch import nn


def pool(hidden: torch.Tensor, seg: torch.Tensor, kind: str) -> torch.Tensor:
    """(B, L, H) -> (B, H).  ``seg`` marks real tokens (> 0)."""
    if kind == "first":
        return hidden[:, 0]
    keep = (seg > 0).unsqueeze(-1)
    if kind == "mean":
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)
    if kind == "max":
        return hidden.masked_fill(~keep, torch.finfo(hidden.dtype).min).max(1).values
    if kind == "last":
        last = (seg > 0).sum(1).clamp(min=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise ValueError(f"unknown pooling {kind}")


class ClassificationHead(nn.Module):
    """pool -> dense -> tanh -> dense (UER-py's classifier head)."""

    def __init__(self, hidden_size: int, labels_num: int, pooling: str = "first"):
        super().__init__()
        self.pooling = pooling
        self.linear_1 = nn.Linear(hidden_size, hidden_size)
        self.linear_2 = nn.Linear(hidden_size, labels_num)

    def forward(self, hidden: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.linear_2(torch.tanh(self.linear_1(pool(hidden, seg, self.pooling))))
