"""Building the model where it belongs and handing it to an engine, without a global args object.

The CLI reads the flags, joins the process group and reconciles a DeepSpeed config (see
``uer.cli.engine_setup``), then hands an ``EngineFactory`` down to the procedures (pretraining,
fine-tuning, inference).  They only ever call ``construction()`` (the context a model is built in:
partitioned from the start under ZeRO-3), ``build(model, total_steps)`` and ``build_for_inference``.
"""

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from uer.partitioned import has_partitioned_parameters
from uer.training.engines import LocalEngine
from uer.training.optim import build_optimizer, parameter_groups
from uer.training.schedules import build_scheduler


@dataclass
class OptimizerSettings:
    """What the optimizer and schedule are built from; ``warmup`` is a fraction of the total steps."""
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    adam_epsilon: float = 1e-6
    scheduler: str = "linear"
    warmup: float = 0.1
    poly_power: float = 1.0
    lr_end_ratio: float = 0.0
    lr_decay: float = 0.5            # tri_stage: decay phase as a fraction of the total steps (UER-py)
    num_cycles: int = 1              # cosine_with_restarts: cosine decays (UER-py: 1)
    optimizer: str = "adamw"         # adamw | adafactor
    adafactor_clip_threshold: float = 1.0
    adafactor_decay_rate: float = -0.8
    precision: str = "fp32"
    max_grad_norm: float = 1.0
    accumulation_steps: int = 1
    compile: str = ""                # a torch.compile mode (uer.training.compile), "" = eager

    @classmethod
    def from_namespace(cls, ns) -> "OptimizerSettings":
        """The fields a parser defines (the rest keep their defaults)."""
        return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)})


class EngineFactory:
    """``engine``: local | ddp | deepspeed; ``ds_config``: the reconciled DeepSpeed config;
    ``own_optimizer``: our AdamW (False when the DeepSpeed config names its own optimizer)."""

    def __init__(self, engine: str, device: torch.device, world_size: int, settings: OptimizerSettings,
                 ds_config: Optional[dict] = None, own_optimizer: bool = True):
        self.engine, self.device, self.world_size = engine, device, world_size
        self.settings, self.ds_config, self.own_optimizer = settings, ds_config, own_optimizer

    @property
    def rank(self) -> int:
        if self.world_size == 1:
            return 0
        import torch.distributed as dist
        return dist.get_rank()

    def construction(self):
        """Where the model is built: partitioned from the start under ZeRO-3, normally otherwise."""
        if self.engine != "deepspeed":
            return contextlib.nullcontext()
        from uer.training.engines.deepspeed_engine import partitioned_construction
        return partitioned_construction(self.ds_config)

    def build(self, model, total_steps: int):
        s = self.settings
        warmup = int(s.warmup * total_steps)

        def make_scheduler(optimizer):
            return build_scheduler(optimizer, s.scheduler, warmup, total_steps, s.poly_power, s.lr_end_ratio,
                                   decay_steps=int(s.lr_decay * total_steps), num_cycles=s.num_cycles)

        if not has_partitioned_parameters(model):     # ZeRO-3 placed the partitions already
            model.to(self.device)
        if s.compile:       # in place, before DDP wraps it: names and checkpoints stay the same
            from uer.training.compile import compile_model
            compile_model(model, s.compile, self.device, self.engine)
        if self.engine == "deepspeed":
            from uer.training.engines.deepspeed_engine import DeepSpeedEngine
            groups = parameter_groups(model, s.weight_decay)
            optimizer = self._optimizer(model) if self.own_optimizer else None
            return DeepSpeedEngine(model, self.ds_config, groups, optimizer, make_scheduler)
        optimizer = self._optimizer(model)
        if self.engine == "ddp":
            from uer.training.engines.ddp import DDPEngine
            return DDPEngine(model, optimizer, make_scheduler(optimizer), self.device, s.precision,
                             s.max_grad_norm, s.accumulation_steps)
        return LocalEngine(model, optimizer, make_scheduler(optimizer), self.device, s.precision,
                           s.max_grad_norm, s.accumulation_steps)

    def _optimizer(self, model):
        s = self.settings
        return build_optimizer(model, s.learning_rate, s.weight_decay, (s.beta1, s.beta2), s.adam_epsilon,
                               kind=s.optimizer, adafactor_clip_threshold=s.adafactor_clip_threshold,
                               adafactor_decay_rate=s.adafactor_decay_rate)

    def build_for_inference(self, model):
        """An engine that only runs forwards.  One process: no optimizer at all.  DDP / DeepSpeed
        (a model partitioned over devices): the training engine, never stepped — under ZeRO-3 every
        rank takes part in every forward, which the prediction loop arranges."""
        if self.engine == "local":
            model.to(self.device)
            # No optimizer: it is never stepped, and building one costs ~1-2 s at startup (torch's
            # Optimizer imports torch._dynamo on first use).
            return LocalEngine(model, None, None, self.device, self.settings.precision)
        return self.build(model, total_steps=1)
