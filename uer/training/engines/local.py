"""The local engine: CPU or one GPU, fp32 / bf16 / fp16 autocast.

An engine owns the model, optimizer, scheduler and precision; the Trainer only calls the methods
of ``uer.training.engines.base.Engine``, so the DDP and DeepSpeed engines plug in behind the same
interface.
"""

import contextlib
import re
import warnings
from typing import Optional, Tuple

import torch
from torch import nn

from uer.errors import ConfigError
from uer.training.engines.base import Engine
from uer.training.metrics import host_floats

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class LocalEngine(Engine):
    def __init__(self, model: nn.Module, optimizer: Optional[torch.optim.Optimizer], scheduler,
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
        self._loss_finite: Optional[torch.Tensor] = None    # this optimizer step's losses all finite

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
        if self.world_size == 1:
            # A non-finite loss skips this step's update (see step()), as a non-finite gradient does,
            # kept on the device: no sync.  Not under DDP: the flag is this rank's alone, and ranks
            # deciding apart would drift apart; there the loss's NaN reaches every rank's gradient.
            finite = torch.isfinite(loss.detach())
            self._loss_finite = finite if self._loss_finite is None else self._loss_finite & finite
        loss = loss / self.accumulation_steps
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Clip, update, advance the schedule.  Returns (gradient norm before clipping, skipped) as
        0-dim tensors on the device, read by the Trainer at its next log step: no host sync here
        with a fused optimizer (torch's fused AdamW, build_optimizer's choice).

        A step whose gradient norm (or, in one process, whose loss) is NaN/inf is skipped: the
        weights and the optimizer's moments stay as they were — a NaN gradient would make every
        weight it touches NaN.  fp16 loss scaling skips overflowing steps the same way.  The
        schedule advances on every step, skipped or not, so the learning rate follows the step
        counter (and a resumed run) exactly."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.max_grad_norm if self.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)    # a device tensor; no sync
        finite = torch.isfinite(grad_norm)
        if self._loss_finite is not None:
            finite = finite & self._loss_finite.to(finite.device)
            self._loss_finite = None
        if self.scaler is not None:
            skipped = self._scaled_step()
        elif getattr(self.optimizer, "_step_supports_amp_scaling", False):
            # Fused optimizers take the skip decision on the device, the way GradScaler hands them
            # its overflow flag: the kernel leaves weights, moments and step count untouched.
            skipped = ~finite
            self.optimizer.grad_scale, self.optimizer.found_inf = None, skipped.float()
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.grad_scale, self.optimizer.found_inf
        else:
            # An optimizer that cannot take a device flag (Adafactor, a non-fused AdamW): the host
            # decides, one sync per optimizer step (not per micro-step).
            skipped = ~finite
            if bool(finite):
                self.optimizer.step()
        self._skipped.append(skipped)
        with warnings.catch_warnings():
            # A skipped first step never called optimizer.step(); torch's warning about the order
            # does not apply: the schedule follows the step counter on purpose.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, skipped

    def _scaled_step(self) -> torch.Tensor:
        """fp16: GradScaler skips overflowing steps and lowers its scale; skipped = the scale went
        down.  Compared on the device (get_scale() would be a sync); with a fused optimizer the
        scaler's own skip decision needs none either.  ``_get_scale_async`` is private to torch,
        hence the fallback."""
        scaler = self.scaler
        if not hasattr(scaler, "_get_scale_async"):
            before = scaler.get_scale()
            scaler.step(self.optimizer)
            scaler.update()
            return torch.tensor(scaler.get_scale() < before)
        before = scaler._get_scale_async().clone()
        scaler.step(self.optimizer)
        scaler.update()
        return scaler._get_scale_async() < before

    @property
    def skipped_steps(self) -> int:
        """Updates skipped so far.  Reading it brings the pending device flags back (a sync): the
        Trainer reads it at log steps and in state_dict() before a checkpoint."""
        if self._skipped:
            self._skipped_count += int(sum(host_floats(self._skipped)))
            self._skipped = []
        return self._skipped_count

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._skipped, self._skipped_count = [], int(value)

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
