"""Engines: ``local`` (CPU or one GPU), ``ddp`` (torchrun) and ``deepspeed`` (ZeRO 0-3).  The DDP and
DeepSpeed modules are imported when selected (DeepSpeed is an optional dependency)."""

from uer.training.engines.base import Engine  # noqa: F401
from uer.training.engines.local import LocalEngine  # noqa: F401

ENGINES = ("local", "ddp", "deepspeed")
