"""The DDP engine: one process per device under torchrun, gradients averaged by
DistributedDataParallel (gloo on the CPU, nccl on GPUs).

    torchrun --nproc_per_node 2 pretrain.py --engine ddp ...

Everything but the forward pass is the local engine's: every rank holds the whole model and
optimizer and, since the averaged gradients are identical on every rank, clips and steps to the
same weights.  The global batch is ``batch_size x accumulation_steps x world_size``; each rank's
loss is the mean over its own micro-batch, so the update is the mean of the micro-batch means —
exactly what one process computes with ``batch_size`` and ``accumulation_steps x world_size``.
"""

import contextlib

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from uer.training import distributed
from uer.training.engines.local import LocalEngine


class DDPEngine(LocalEngine):
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 device: torch.device, precision: str = "fp32", max_grad_norm: float = 1.0,
                 accumulation_steps: int = 1):
        """The process group must already exist (``uer.training.distributed.init_process_group``)."""
        super().__init__(model, optimizer, scheduler, device, precision, max_grad_norm, accumulation_steps)
        import torch.distributed as dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        # DDP broadcasts rank 0's parameters at construction, so every rank starts identical.
        self.ddp = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self._micro = 0

    def forward(self, batch: dict) -> dict:
        # Non-final micro-batches of an accumulation cycle only accumulate locally: the gradients
        # are all-reduced once, in the backward pass of the last one.  DDP decides this in forward
        # (no_sync must cover the forward pass), so the backward may follow outside the context.
        if not torch.is_grad_enabled():      # evaluation: no gradient bookkeeping
            with self.autocast():
                return self.model(batch)
        self._micro += 1
        final = self._micro >= self.accumulation_steps
        sync = contextlib.nullcontext() if final else self.ddp.no_sync()
        with sync, self.autocast():
            return self.ddp(batch)

    def step(self):
        self._micro = 0
        return super().step()

    def reduce_mean(self, values):
        return distributed.reduce_mean(values)

    def gather(self, obj):
        return distributed.gather(obj)

    def barrier(self) -> None:
        distributed.barrier()
