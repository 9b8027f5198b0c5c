"""The local engine: CPU or one GPU, fp32 / bf16 / fp16 autocast.

An engine owns the model, optimizer, scheduler and precision; the Trainer only calls the methods
of ``uer.training.engines.base.Engine``, so the DDP and DeepSpeed engines plug in behind the same
interface.
"""

import contextlib
import math
from typing import Optional, Tuple

import torch
from torch import nn

from uer.errors import ConfigError
from uer.training.engines.base import Engine

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class LocalEngine(Engine):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 device: torch.device, precision: str = "fp32", max_grad_norm: float = 1.0,
                 accumulation_steps: int = 1):
        if precision not in DTYPES:
            raise ConfigError(f"--precision must be one of {list(DTYPES)}, got {precision}")
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
        self.model = model.to(device)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.device, self.precision = device, precision
        self.max_grad_norm = max_grad_norm
        self.accumulation_steps = accumulation_steps
        self.scaler: Optional[torch.amp.GradScaler] = \
            torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.skipped_steps = 0

    def autocast(self):
        dtype = DTYPES[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()}

    def forward(self, batch: dict) -> dict:
        with self.autocast():
            return self.model(batch)

    def backward(self, loss: torch.Tensor) -> None:
        loss = loss / self.accumulation_steps
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self) -> Tuple[float, bool]:
        """Clip, update, advance the schedule.  Returns (gradient norm before clipping, skipped)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.max_grad_norm if self.max_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        skipped = False
        if self.scaler is None and not math.isfinite(grad_norm):
            # A NaN/inf gradient would make every weight it touches NaN: drop it, as fp16 loss
            # scaling does (the Trainer counts these and stops after too many in a row).  Under DDP
            # the gradients were all-reduced first, so every rank takes the same decision.
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            return grad_norm, True
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale    # overflow: the step was skipped
        else:
            self.optimizer.step()
        if skipped:
            self.skipped_steps += 1
        else:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, skipped

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "skipped_steps": self.skipped_steps}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
