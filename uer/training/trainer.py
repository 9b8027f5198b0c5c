"""The one training loop: every target, every data processor, every engine.

It pulls collated batches, runs forward/backward through the engine, steps the optimizer every
``accumulation_steps`` micro-batches, logs every entry the model returns, and writes resumable
checkpoints.  It knows nothing about models or targets beyond ``out["loss"]``.

Extension point: if the unwrapped model (``engine.model``) has a method ``set_training_step(step)``,
it is called before each optimizer step's micro-batches with the number of optimizer steps done
so far (0 for the first; the restored step after a resume).  Models with step-dependent behaviour
(e.g. the ELECTRA generator's temperature schedule) use it instead of the Trainer knowing them.
"""

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from uer.errors import ConfigError, UerError
from uer.data.sampler import BatchSampler, CollatedBatches
from uer.training.adversarial import AdversarialConfig, Adversary
from uer.training.checkpoint import CheckpointManager
from uer.training.engines.local import LocalEngine
from uer.training.flops import BatchFlops, batch_tokens
from uer.training.metrics import MetricsLog, RunningMeans, Throughput, format_eta, host_floats, peak_memory_mib
from uer.training.rng import rng_state, set_rng_state

logger = logging.getLogger("uer")


class TrainingError(UerError):
    """Training cannot continue (e.g. the loss became NaN)."""


def _identity(x):
    return x


@dataclass
class TrainerConfig:
    total_steps: int
    accumulation_steps: int = 1
    report_steps: int = 100
    save_checkpoint_steps: int = 10000
    num_workers: int = 0
    peak_tflops: Optional[float] = None      # per device, at the run's precision; None/0: unknown, no MFU
    adversarial: Optional[AdversarialConfig] = None    # FGM / PGD extra passes after each backward
    # Non-finite gradients skip the update (counted); this many in a row stop the run.  fp16 loss
    # scaling halves its scale at each skip, so 25 in a row means a scale 2^25 below where it was.
    max_skipped_in_a_row: int = 25


@dataclass
class _PendingStep:
    """An optimizer step whose outcome is still on the device: checked at the next sync point."""
    step: int
    grad_norm: object = None                     # a number or a 0-dim tensor
    skipped: object = False
    # (what, loss, epoch, batch index) of each loss computed in the step
    losses: List[Tuple[str, object, int, int]] = field(default_factory=list)


class Trainer:
    """The loop makes no host sync per micro-step: losses, metrics, gradient norms and skip flags
    stay on the device and are read together at a *sync point* — each log step, each checkpoint,
    and the first step of a run (before ``on_start`` may clear an earlier run's files).  A NaN
    loss or too many skipped steps stop the run there, naming the step where it happened; in the
    meantime the engine has skipped those steps' updates on the device, so the weights stay finite."""

    def __init__(self, engine, batches: CollatedBatches, sampler: BatchSampler, cfg: TrainerConfig,
                 checkpoints: Optional[CheckpointManager] = None, metrics: Optional[MetricsLog] = None,
                 batch_flops: Optional[BatchFlops] = None,
                 run_info: Optional[Dict] = None, on_start: Optional[Callable[[], None]] = None):
        self.engine, self.batches, self.sampler, self.cfg = engine, batches, sampler, cfg
        self.checkpoints, self.metrics = checkpoints, metrics
        self.batch_flops = batch_flops
        self._pending: List[_PendingStep] = []
        self.run_info = run_info or {}      # resolved config + arguments, stored in every checkpoint
        # Called on every rank once the run's first optimizer step has succeeded, before anything is
        # logged or saved: from then on the run may replace what an earlier run left in its place.
        self.on_start = on_start
        self.step = 0
        self.skipped_in_a_row = 0
        self.adversary = _adversary(engine, cfg)

    # -- state ------------------------------------------------------------------------------------
    def state(self) -> dict:
        """The training state beside the weights.  Collective: every rank calls it (each rank's RNG
        state is gathered, so dropout continues exactly on every rank after a resume)."""
        rngs = self.engine.gather(rng_state())
        state = {"step": self.step, "engine": self.engine.state_dict(), "sampler": self.sampler.state_dict(),
                 "rng": rngs[0], "run_info": self.run_info}
        if self.engine.world_size > 1:
            state["rng_per_rank"] = rngs
            state["world_size"] = self.engine.world_size
        return state

    def restore(self, state: dict) -> None:
        """Continue from a loaded training state (model weights are loaded by the engine)."""
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.engine.world_size:
            raise ConfigError(f"the checkpoint was written by {saved_world} process(es) but this run has "
                              f"{self.engine.world_size}: the data position counts global batches of "
                              "batch_size x processes, so resume with the same number of processes")
        self.engine.load_state_dict(state["engine"])
        self.sampler.load_state_dict(state["sampler"])
        per_rank = state.get("rng_per_rank")
        set_rng_state(per_rank[self.engine.rank] if per_rank else state["rng"])
        self.step = int(state["step"])

    def save(self) -> None:
        """Collective: every rank calls it; the engine decides who writes what.  Weights that are
        no longer finite are never written: the run stops, and the last checkpoint stays the newest."""
        if self.checkpoints is None:
            return
        self._check_pending()
        if not self.engine.weights_finite():
            raise TrainingError(f"step {self.step}: the model's weights are no longer finite (NaN/inf); nothing "
                                f"was saved ({self._last_checkpoint_hint()}); lower --learning_rate or check the data")
        path = self.engine.save_checkpoint(self.checkpoints, self.step, self.state())
        if self.engine.is_main:
            logger.info("step %d: checkpoint written to %s", self.step, path)

    # -- loop -------------------------------------------------------------------------------------
    def _loader(self):
        # A private generator: the loader must not draw from the global RNG, or a resumed run's
        # dropout masks would differ from the uninterrupted run's.  On a GPU the batches are pinned:
        # a non_blocking copy from pageable memory makes the host wait for the stream (a hidden sync).
        device = getattr(self.engine, "device", None)
        return iter(DataLoader(self.batches, sampler=self.sampler, batch_size=None,
                               num_workers=self.cfg.num_workers, collate_fn=_identity,
                               generator=torch.Generator().manual_seed(0),
                               pin_memory=isinstance(device, torch.device) and device.type == "cuda",
                               prefetch_factor=4 if self.cfg.num_workers > 0 else None))

    def train(self, until: Optional[int] = None) -> Dict[str, float]:
        """Train up to optimizer step ``until`` (default: total_steps); callable repeatedly, e.g.
        once per fine-tuning epoch, continuing from the sampler's position."""
        cfg, engine = self.cfg, self.engine
        until = cfg.total_steps if until is None else min(until, cfg.total_steps)
        engine.model.train()
        batches = self._loader()
        means, speed = RunningMeans(), Throughput()
        start_step, start_time = self.step, time.perf_counter()
        last: Dict[str, float] = {}
        self._pending = []
        set_step = getattr(engine.model, "set_training_step", None)
        while self.step < until:
            if set_step is not None:
                set_step(self.step)
            pending = _PendingStep(self.step + 1)
            for _ in range(cfg.accumulation_steps):
                batch = next(batches)
                epoch, index = batch.pop("_position")
                self._count(batch, speed)
                batch = engine.to_device(batch)
                out = engine.forward(batch)
                loss = out["loss"]
                pending.losses.append(("loss", loss.detach(), epoch, index))
                engine.backward(loss)
                if self.adversary is not None:
                    self._adversarial_passes(batch, out, pending, epoch, index)
                self.sampler.advance(epoch, index)
                means.add({k: v for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0})
            pending.grad_norm, pending.skipped = engine.step()
            self.step += 1
            self._pending.append(pending)
            if self.on_start is not None:
                self._check_pending()     # the first step must have worked before anything is replaced
                self.on_start()
                self.on_start = None
                engine.barrier()      # nobody writes a checkpoint before rank 0 has cleared the place
            means.add({"grad_norm": pending.grad_norm})
            if self.step % cfg.report_steps == 0 or self.step == until:
                last = self._log_step(means, speed, start_step, start_time)
            if self.step % cfg.save_checkpoint_steps == 0 or self.step == cfg.total_steps:
                self.save()
        return last

    def _count(self, batch: dict, speed: Throughput) -> None:
        """Real tokens and FLOPs of a host batch (CPU tensors: nothing is read back from a device)."""
        src_tokens, tgt_tokens = batch_tokens(batch)
        speed.add_tokens(src_tokens + tgt_tokens)
        if self.batch_flops is not None:
            tgt = batch.get("tgt_in")
            speed.add_flops(self.batch_flops(src_tokens, batch["src"].size(1), tgt_tokens,
                                             tgt.size(1) if tgt is not None else 0))

    def _check_pending(self) -> None:
        """The sync point: read the pending steps' losses, gradient norms and skip flags in one
        device-to-host copy, and stop the run at the first step that must stop it."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        flat = []
        for p in pending:
            flat.extend(loss for _, loss, _, _ in p.losses)
            flat.extend((p.grad_norm, p.skipped))
        values = iter(host_floats(flat))
        outcomes = []
        for p in pending:
            losses = [(what, next(values), epoch, index) for what, _, epoch, index in p.losses]
            outcomes.append((p.step, losses, next(values), next(values) > 0))
        skipped_total = self.engine.skipped_steps
        later_skips = sum(skipped for *_, skipped in outcomes)
        for step, losses, grad_norm, skipped in outcomes:
            for what, value, epoch, index in losses:
                if not math.isfinite(value):
                    hint = "lower --fgm_epsilon / --pgd_epsilon" if what != "loss" else \
                        f"{self._last_checkpoint_hint()}; lower --learning_rate or check the data"
                    raise TrainingError(f"step {step}: the {what} is {value} (epoch {epoch}, batch {index}); {hint}")
            later_skips -= skipped
            self._count_skip(step, skipped, grad_norm, skipped_total - later_skips)

    def _count_skip(self, step: int, skipped: bool, grad_norm: float, skipped_so_far: int) -> None:
        """Steps dropped for a NaN/inf gradient (or an fp16 overflow) are counted in the log; too
        many in a row means the run cannot recover by itself, so it stops instead of idling."""
        self.skipped_in_a_row = self.skipped_in_a_row + 1 if skipped else 0
        if skipped and self.engine.is_main:
            logger.warning("step %d: gradient norm %s, update skipped (%d skipped so far)",
                           step, grad_norm, skipped_so_far)
        if self.skipped_in_a_row >= self.cfg.max_skipped_in_a_row:
            raise TrainingError(f"step {step}: the last {self.skipped_in_a_row} updates were skipped for "
                                f"non-finite gradients (norm {grad_norm}); {self._last_checkpoint_hint()}; "
                                "lower --learning_rate or check the data")

    def _last_checkpoint_hint(self) -> str:
        latest = self.engine.latest_checkpoint(self.checkpoints) if self.checkpoints is not None else None
        return f"the last checkpoint is {latest}" if latest else "no checkpoint was written yet"

    def _adversarial_passes(self, batch: dict, out: dict, pending: _PendingStep, epoch: int, index: int) -> None:
        """FGM / PGD: the same batch again with the word embedding perturbed, its gradient added to
        the clean one; the embedding is restored before the optimizer steps."""
        engine = self.engine
        adv_loss = self.adversary.train_step(lambda: engine.forward(batch)["loss"], engine.backward)
        if adv_loss is None:        # zero or non-finite gradient (fp16 overflow): nothing to follow
            return
        pending.losses.append(("adversarial loss", adv_loss, epoch, index))
        out["adv_loss"] = adv_loss

    def _log_step(self, means: RunningMeans, speed: Throughput, start_step: int, start_time: float) -> Dict[str, float]:
        """A sync point: the pending checks, then the interval's means and rates, logged and written."""
        self._check_pending()
        values, lap = means.means(), speed.lap()
        means.reset()
        return self._report(values, lap, start_step, start_time)

    def _report(self, values: Dict[str, float], lap: Dict[str, float], start_step: int,
                start_time: float) -> Dict[str, float]:
        done = self.step - start_step
        elapsed = time.perf_counter() - start_time
        eta = elapsed / max(done, 1) * (self.cfg.total_steps - self.step)
        world = self.engine.world_size
        values = self.engine.reduce_mean(values)     # collective: every rank reports
        record = {"step": self.step, "lr": self.engine.learning_rate(), **values,
                  "tokens_per_s": lap["tokens_per_s"] * world, "skipped_steps": self.engine.skipped_steps}
        mfu = None
        if self.batch_flops is not None:
            record["tflops_per_device"] = lap["tflops"]
            if self.cfg.peak_tflops:
                mfu = record["mfu"] = lap["tflops"] / self.cfg.peak_tflops
        device = getattr(self.engine, "device", None)
        record["peak_mem_mib"] = peak_memory_mib(device if isinstance(device, torch.device) else torch.device("cpu"))
        if self.engine.is_main:
            if self.metrics is not None:
                self.metrics.write(record)
            shown = " ".join(f"{k} {_fmt(v)}" for k, v in record.items()
                             if k not in ("step", "skipped_steps") or (k == "skipped_steps" and v))
            if self.batch_flops is not None and mfu is None:
                shown += " mfu n/a"      # no known peak for this device (a CPU): see --peak_tflops
            logger.info("step %d/%d | %s | eta %s", self.step, self.cfg.total_steps, shown, format_eta(eta))
        return record


def _adversary(engine, cfg: TrainerConfig) -> Optional[Adversary]:
    if cfg.adversarial is None:
        return None
    # The perturbation reads and restores gradients in param.grad: the local and DDP engines keep
    # them there; DeepSpeed keeps its own (partitioned) gradient buffers.
    if not isinstance(engine, LocalEngine):
        raise ConfigError(f"adversarial training (--use_adv) needs the local or DDP engine, not "
                          f"{type(engine).__name__}: DeepSpeed holds the gradients itself (partitioned)")
    if cfg.accumulation_steps > 1:
        raise ConfigError(f"adversarial training (--use_adv) with --accumulation_steps {cfg.accumulation_steps}: "
                          "the perturbation follows one batch's gradient; use --accumulation_steps 1")
    return Adversary(engine.model, cfg.adversarial)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}" if not math.isnan(v) else "nan"
    return str(v)
