"""Learning-rate schedules by UER-py name; each is a multiplier of the base rate per optimizer step.

``warmup`` is the number of warm-up steps (the CLI turns UER-py's ``--warmup`` fraction into steps).
"""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from uer.registry import SCHEDULERS


def _warm(step: int, warmup: int) -> float:
    return step / max(1, warmup)


@SCHEDULERS.register("linear")
def linear(step: int, warmup: int, total: int, **_) -> float:
    if step < warmup:
        return _warm(step, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@SCHEDULERS.register("cosine")
def cosine(step: int, warmup: int, total: int, **_) -> float:
    if step < warmup:
        return _warm(step, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@SCHEDULERS.register("constant")
def constant(step: int, warmup: int, total: int, **_) -> float:
    return 1.0


@SCHEDULERS.register("constant_with_warmup")
def constant_with_warmup(step: int, warmup: int, total: int, **_) -> float:
    return _warm(step, warmup) if step < warmup else 1.0


@SCHEDULERS.register("inverse_sqrt")
def inverse_sqrt(step: int, warmup: int, total: int, **_) -> float:
    if step < warmup:
        return _warm(step, warmup)
    return math.sqrt(max(1, warmup) / max(1, step))


@SCHEDULERS.register("polynomial")
def polynomial(step: int, warmup: int, total: int, power: float = 1.0, end_ratio: float = 0.0, **_) -> float:
    if step < warmup:
        return _warm(step, warmup)
    remaining = max(0.0, 1.0 - (step - warmup) / max(1, total - warmup))
    return end_ratio + (1.0 - end_ratio) * remaining ** power


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int,
                    power: float = 1.0, end_ratio: float = 0.0) -> LambdaLR:
    fn = SCHEDULERS.get(name, where="--scheduler")
    return LambdaLR(optimizer, lambda step: fn(step, warmup_steps, total_steps, power=power,
                                               end_ratio=end_ratio))
