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


@SCHEDULERS.register("cosine_with_restarts")
def cosine_with_restarts(step: int, warmup: int, total: int, num_cycles: int = 1, **_) -> float:
    """UER-py's (Hugging Face's) hard restarts: ``num_cycles`` cosine decays from 1 to 0 after the
    warm-up, each restarting at 1; 0 from ``total`` on.  One cycle is ``cosine`` (UER-py fixes 1)."""
    if step < warmup:
        return _warm(step, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0))))


# UER-py's tri_stage constants (uer/utils/optimizers.py get_tri_stage_schedule; not flags there).
TRI_STAGE_INIT_SCALE, TRI_STAGE_FINAL_SCALE = 0.01, 0.05


@SCHEDULERS.register("tri_stage")
def tri_stage(step: int, warmup: int, total: int, decay_steps: int = 0,
              init_scale: float = TRI_STAGE_INIT_SCALE, final_scale: float = TRI_STAGE_FINAL_SCALE, **_) -> float:
    """SpecAugment's three stages as UER-py computes them: a linear ramp from ``init_scale`` to 1 over
    ``warmup`` steps, 1 until ``total - decay_steps``, then exp decay reaching ``final_scale`` at
    ``total``, and ``final_scale`` after it.  (Warm-up and decay overlapping: UER-py's order of the
    cases, so the decay then starts below 1.)"""
    if step < warmup:
        return init_scale + step * (1.0 - init_scale) / warmup
    if step < total - decay_steps:
        return 1.0
    if step <= total:
        return math.exp(math.log(final_scale) / max(decay_steps, 1) * (step - total + decay_steps))
    return final_scale


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int,
                    power: float = 1.0, end_ratio: float = 0.0, decay_steps: int = 0,
                    num_cycles: int = 1) -> LambdaLR:
    """A LambdaLR over the named multiplier.  Its state (the step) is all a resumed run needs: the
    multiplier is a pure function of the step and these settings, which the resumed run's flags give."""
    fn = SCHEDULERS.get(name, where="--scheduler")
    return LambdaLR(optimizer, lambda step: fn(step, warmup_steps, total_steps, power=power,
                                               end_ratio=end_ratio, decay_steps=decay_steps,
                                               num_cycles=num_cycles))
