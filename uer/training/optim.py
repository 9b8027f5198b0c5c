"""AdamW or Adafactor with the usual parameter groups: no weight decay on biases and norm weights."""

from typing import List, Tuple

import torch
from torch import nn

from uer.errors import ConfigError


def parameter_groups(model: nn.Module, weight_decay: float) -> List[dict]:
    decay, no_decay = [], []
    seen = set()
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        # Matrices and embedding tables decay; vectors (biases, norm scales) do not.
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


OPTIMIZERS = ("adamw", "adafactor")


def build_optimizer(model: nn.Module, learning_rate: float, weight_decay: float = 0.01,
                    betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, kind: str = "adamw",
                    adafactor_clip_threshold: float = 1.0,
                    adafactor_decay_rate: float = -0.8) -> torch.optim.Optimizer:
    """``kind``: adamw (betas, eps) | adafactor (UER-py's settings, see uer.training.adafactor; betas
    and eps do not apply).  Both skip weight decay on biases and norms."""
    groups = parameter_groups(model, weight_decay)
    if kind == "adafactor":
        from uer.training.adafactor import Adafactor
        return Adafactor(groups, lr=learning_rate, clip_threshold=adafactor_clip_threshold,
                         decay_rate=adafactor_decay_rate)
    if kind != "adamw":
        raise ConfigError(f"--optimizer {kind!r}: not one of {', '.join(OPTIMIZERS)}")
    try:   # fused kernels where this build of torch has them for the parameters' device
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, foreach=True)
