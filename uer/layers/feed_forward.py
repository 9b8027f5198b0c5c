"""Position-wise feed-forward blocks: dense (BERT) and gated (T5 v1.1 / LLaMA)."""

import torch
from torch import nn

from uer.layers.activations import ACTIVATIONS


class DenseFeedForward(nn.Module):
    def __init__(self, hidden_size: int, feedforward_size: int, act: str, bias: bool = True):
        super().__init__()
        self.linear_1 = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_2 = nn.Linear(feedforward_size, hidden_size, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class GatedFeedForward(nn.Module):
    """act(gate(x)) * up(x), projected back: the GLU variants of Shazeer (2020)."""

    def __init__(self, hidden_size: int, feedforward_size: int, act: str, bias: bool = True):
        super().__init__()
        self.linear_gate = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_1 = nn.Linear(hidden_size, feedforward_size, bias=bias)
        self.linear_2 = nn.Linear(feedforward_size, hidden_size, bias=bias)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_gate(x)) * self.linear_1(x))


def build_feed_forward(kind: str, hidden_size: int, feedforward_size: int, act: str,
                       bias: bool = True) -> nn.Module:
    cls = GatedFeedForward if kind == "gated" else DenseFeedForward
    return cls(hidden_size, feedforward_size, act, bias)
