"""Activation functions by config name (UER-py names)."""

import torch.nn.functional as F


def gelu_tanh(x):
    # GPT-2 / ALBERT "gelu_new": the tanh approximation of GELU.
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_fast": gelu_tanh,
    "gelu_new": gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": __import__("torch").tanh,
}
