"""Adafactor as UER-py / TencentPretrain train with it (``--optimizer adafactor``).

UER-py builds ``Adafactor(groups, lr=--learning_rate, scale_parameter=False, relative_step=False)``:
the learning rate is the schedule's (not Adafactor's own 1/sqrt(t) step), the update is not scaled
by the parameter's RMS, there is no first moment (beta1 None), the second moment of a matrix is
factored into row and column means, and the update is clipped to RMS <= ``clip_threshold``.  This is
that algorithm (Shazeer & Stern 2018, section 7's settings), written here.

``torch.optim.Adafactor`` (torch >= 2.5) is not used: it always multiplies the step by the
parameter's RMS and caps it at 1/sqrt(t) — UER-py's ``scale_parameter=True, relative_step=True``
mode, not the one its scripts use — so the same ``--learning_rate`` would train differently.
"""

import math
from typing import Iterable, Tuple

import torch
from torch.optim import Optimizer


class Adafactor(Optimizer):
    """``eps``: (added to the squared gradient, unused without parameter scaling — kept for UER-py's
    signature); ``decay_rate``: the second-moment decay is ``1 - t ** decay_rate``; ``weight_decay``
    is decoupled (``p -= weight_decay * lr * p``), as in UER-py."""

    def __init__(self, params: Iterable, lr: float, eps: Tuple[float, float] = (1e-30, 1e-3),
                 clip_threshold: float = 1.0, decay_rate: float = -0.8, weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"Adafactor learning rate must be >= 0, got {lr}")
        super().__init__(params, dict(lr=lr, eps=eps, clip_threshold=clip_threshold, decay_rate=decay_rate,
                                      weight_decay=weight_decay))

    @staticmethod
    def _rms(x: torch.Tensor) -> torch.Tensor:
        return x.norm(2) / math.sqrt(x.numel())

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if grad.is_sparse:
                    raise RuntimeError("Adafactor does not support sparse gradients")
                state = self.state[p]
                factored = grad.dim() >= 2
                if not state:
                    state["step"] = 0
                    if factored:
                        state["exp_avg_sq_row"] = grad.new_zeros(grad.shape[:-1])
                        state["exp_avg_sq_col"] = grad.new_zeros(grad.shape[:-2] + grad.shape[-1:])
                    else:
                        state["exp_avg_sq"] = torch.zeros_like(grad)
                state["step"] += 1
                beta2t = 1.0 - math.pow(state["step"], group["decay_rate"])
                sq = grad * grad + group["eps"][0]
                if factored:
                    row, col = state["exp_avg_sq_row"], state["exp_avg_sq_col"]
                    row.mul_(beta2t).add_(sq.mean(dim=-1), alpha=1.0 - beta2t)
                    col.mul_(beta2t).add_(sq.mean(dim=-2), alpha=1.0 - beta2t)
                    # V ~ row col^T / mean(row): rank-1 estimate of the squared-gradient average.
                    r = (row / row.mean(dim=-1, keepdim=True)).rsqrt()
                    update = r.unsqueeze(-1) * col.rsqrt().unsqueeze(-2) * grad
                else:
                    avg = state["exp_avg_sq"]
                    avg.mul_(beta2t).add_(sq, alpha=1.0 - beta2t)
                    update = avg.rsqrt() * grad
                update.div_((self._rms(update) / group["clip_threshold"]).clamp_(min=1.0))
                lr = group["lr"]
                p32 = p.float() if p.dtype in (torch.float16, torch.bfloat16) else p
                if group["weight_decay"] != 0:
                    p32.add_(p32, alpha=-group["weight_decay"] * lr)
                p32.add_(update, alpha=-lr)
                if p32 is not p:
                    p.copy_(p32)
        return loss
