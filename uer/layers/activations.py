"""Activation functions by config name (UER-py's names, plus Hugging Face's where they differ).

Three spellings of the tanh approximation of GELU, because converted checkpoints should reproduce the
source's numbers to 1e-5 and the two ways of computing it round differently (about 1e-5 on logits):
``gelu_new`` is the explicit formula, as GPT-2's code and transformers' ``gelu_new`` compute it (what
config.json's "gelu_new" / T5's "gated-gelu" import as); ``gelu_fast`` (UER-py's name, our shipped
configs) and ``gelu_pytorch_tanh`` are torch's fused kernel, one pass over memory instead of several.
"""

import math

import torch
import torch.nn.functional as F


def gelu_tanh_fused(x):
    return F.gelu(x, approximate="tanh")


def gelu_tanh_formula(x):
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), Hendrycks & Gimpel's approximation, term by term.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_fast": gelu_tanh_fused,
    "gelu_pytorch_tanh": gelu_tanh_fused,
    "gelu_new": gelu_tanh_formula,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}
