"""The DeepSpeed engine: ZeRO stages 0-3, CPU/NVMe offload, bf16/fp16 — the multi-machine path.

    deepspeed pretrain.py --deepspeed --deepspeed_config models/deepspeed/zero2.json ...
    torchrun --nproc_per_node 8 pretrain.py --deepspeed --deepspeed_config ... ...

DeepSpeed is imported only when this engine is selected.  The model, our AdamW parameter groups
(or DeepSpeed's optimizer, when the config has an ``optimizer`` section or offloads it) and our
learning-rate schedule are handed to ``deepspeed.initialize``; the JSON config has been reconciled
with the command line first (``deepspeed_config.py``).

Checkpoints are DeepSpeed's own (every rank writes its optimizer partition):

    <output_model_path>.deepspeed/step<N>/...   model, optimizer, scheduler partitions
                                                + the Trainer state (step, sampler position, RNG of
                                                every rank, resolved config) as client state
    <output_model_path>.deepspeed/latest        the tag of the newest complete checkpoint

and at the end of training the fp32 master weights are consolidated from the last checkpoint
into an ordinary uer weights file ``<output_model_path>`` that finetune/ and inference/ load
(``scripts/consolidate_checkpoint.py`` does the same for any checkpoint).
"""

import contextlib
import glob
import io
import logging
import os
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from uer.errors import CheckpointError, ConfigError
from uer.models.weights import save_state
from uer.partitioned import gathered
from uer.safe_load import deepspeed_loads_restricted, deepspeed_safe_classes, load_tensors_file
from uer.training import distributed
from uer.training.checkpoint import CheckpointManager
from uer.training.engines.base import Engine

logger = logging.getLogger("uer")

CLIENT_KEY = "uer_trainer_state"
DIR_SUFFIX = ".deepspeed"


def import_deepspeed():
    try:
        import deepspeed
    except ImportError as e:
        raise ConfigError("--engine deepspeed needs DeepSpeed, which is not installed (or failed to import: "
                          f"{e}); install it with: pip install uer[deepspeed]") from e
    return deepspeed


def init_deepspeed_distributed() -> Tuple[torch.device, int]:
    """Join the process group the launcher describes (``deepspeed`` or ``torchrun``); a plain
    ``python pretrain.py --deepspeed`` becomes a one-process group (useful for offload on one GPU).
    Returns (this rank's device, world size)."""
    deepspeed = import_deepspeed()
    if not all(k in os.environ for k in distributed.LAUNCH_ENV):
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": os.environ.get("MASTER_PORT", str(_free_port()))})
        logger.info("no launcher environment: running DeepSpeed as a single process")
    from deepspeed.accelerator import get_accelerator
    accelerator = get_accelerator()
    local_rank = int(os.environ["LOCAL_RANK"])
    deepspeed.init_distributed(dist_backend=accelerator.communication_backend_name())
    device = torch.device(accelerator.device_name(local_rank)) if accelerator.device_name() != "cpu" \
        else torch.device("cpu")
    if device.type != "cpu":
        accelerator.set_device(local_rank)
    import torch.distributed as dist
    return device, dist.get_world_size()


def partitioned_construction(config: dict):
    """The context to build the model in: under ZeRO-3, ``deepspeed.zero.Init``, so every module's
    parameters are partitioned across the ranks as soon as that module is built (optionally onto
    the CPU or NVMe, per the config's ``offload_param``) and a model larger than one device never
    exists whole anywhere.  Other stages build the model normally."""
    if int(config.get("zero_optimization", {}).get("stage", 0)) != 3:
        return contextlib.nullcontext()
    deepspeed = import_deepspeed()
    return deepspeed.zero.Init(config_dict_or_path=config)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DeepSpeedEngine(Engine):
    def __init__(self, model: nn.Module, config: dict, param_groups, optimizer=None,
                 make_scheduler: Optional[Callable] = None):
        """``config``: a reconciled DeepSpeed config; ``param_groups``: our parameter groups (no
        weight decay on biases and norms); ``optimizer``: our AdamW over them, or None for the
        config's optimizer; ``make_scheduler(optimizer)`` builds our schedule on whichever it is."""
        deepspeed = import_deepspeed()
        import torch.distributed as dist
        try:
            self.ds, _, _, _ = deepspeed.initialize(model=model, model_parameters=param_groups,
                                                    optimizer=optimizer, lr_scheduler=make_scheduler, config=config)
        except (ValueError, AssertionError, NotImplementedError) as e:
            # DeepSpeed checks the config against the hardware here (e.g. fp16 on a CPU): say so in
            # one line instead of a traceback from inside deepspeed.initialize.
            from deepspeed.accelerator import get_accelerator
            raise ConfigError(f"DeepSpeed refused the config on this machine ({get_accelerator().device_name()} "
                              f"accelerator): {str(e).rstrip('.')}. Check the DeepSpeed config's precision and offload "
                              "sections (on a CPU use an fp32 or bf16 config)") from e
        self.model = self.ds.module
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.device = self.ds.device
        self.stage = self.ds.zero_optimization_stage()
        self.precision = "bf16" if self.ds.bfloat16_enabled() else "fp16" if self.ds.fp16_enabled() else "fp32"
        self.accumulation_steps = self.ds.gradient_accumulation_steps()
        self._micro = 0
        self._last: Optional[Tuple[str, str]] = None     # (directory, tag) of the newest checkpoint

    # -- training --------------------------------------------------------------------------------
    @property
    def skipped_steps(self) -> int:
        return int(self.ds.skipped_steps)

    def to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()}

    def forward(self, batch: dict) -> dict:
        return self.ds(batch)

    def backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed divides by gradient_accumulation_steps itself, and wants step() after every
        # backward: off the accumulation boundary it only counts the micro-step (ZeRO decides in
        # backward, from that count, whether this is the boundary where gradients are reduced).
        self.ds.backward(loss)
        self._micro += 1
        if self._micro < self.accumulation_steps:
            self.ds.step()

    def step(self) -> Tuple[object, bool]:
        """(gradient norm, skipped).  DeepSpeed reads its overflow flag on the host inside ds.step()
        (its own sync, fp16 only); the norm is handed on as DeepSpeed keeps it (a float, or a device
        tensor the Trainer reads at its next log step)."""
        skipped_before = self.ds.skipped_steps
        self.ds.step()                     # the boundary: clip, update, advance our schedule
        self._micro = 0
        norm = self.ds.get_global_grad_norm()
        if norm is None:
            norm = float("nan")
        return norm, self.ds.skipped_steps > skipped_before

    def learning_rate(self) -> float:
        return float(self.ds.get_lr()[0])

    def state_dict(self) -> dict:
        return {}           # optimizer, scheduler, loss scale and step counters are in DeepSpeed's files

    def load_state_dict(self, state: dict) -> None:
        pass

    def reduce_mean(self, values: Dict[str, float]) -> Dict[str, float]:
        return distributed.reduce_mean(values)

    def gather(self, obj):
        return distributed.gather(obj)

    def barrier(self) -> None:
        distributed.barrier()

    # -- checkpoints -----------------------------------------------------------------------------
    @staticmethod
    def directory(checkpoints: CheckpointManager) -> str:
        return checkpoints.prefix + DIR_SUFFIX

    def save_checkpoint(self, checkpoints: CheckpointManager, step: int, state: dict) -> str:
        directory, tag = self.directory(checkpoints), f"step{step}"
        self.ds.save_checkpoint(directory, tag=tag, client_state={CLIENT_KEY: state})
        self.barrier()     # the 'latest' file is written by rank 0 after the others return
        self._last = (directory, tag)
        return os.path.join(directory, tag)

    def latest_checkpoint(self, checkpoints: CheckpointManager) -> Optional[str]:
        directory = self.directory(checkpoints)
        latest = os.path.join(directory, "latest")
        if not os.path.isfile(latest):
            return None
        with open(latest, encoding="utf-8") as f:
            return os.path.join(directory, f.read().strip())

    def load_checkpoint(self, checkpoints: CheckpointManager, path: str,
                        validate: Callable[[dict], None] = lambda state: None) -> dict:
        directory, tag = split_checkpoint_path(path)
        if tag is None:
            with open(os.path.join(directory, "latest"), encoding="utf-8") as f:
                tag = f.read().strip()
        try:
            with deepspeed_loads_restricted():     # DeepSpeed's loaders would unpickle anything
                loaded, client = self.ds.load_checkpoint(directory, tag=tag, load_module_strict=True)
        except CheckpointError:
            raise
        except Exception as e:   # shapes or partitioning differ: say which checkpoint, not DeepSpeed's internals
            raise CheckpointError(f"cannot resume from the DeepSpeed checkpoint {path}: {type(e).__name__}: "
                                  f"{str(e)[:300]}; resume with the --config_path, --deepspeed_config and "
                                  "number of processes it was written with")
        if loaded is None or not client or CLIENT_KEY not in client:
            raise CheckpointError(f"{path} is not a DeepSpeed checkpoint written by pretrain.py (expected "
                                  f"<output_model_path>{DIR_SUFFIX}/step<N> with a 'latest' file beside it)")
        state = client[CLIENT_KEY]
        validate(state)
        self._last = (directory, tag)      # resuming a finished run: its final weights come from here
        return state

    def full_state_dict(self) -> Optional[Dict[str, torch.Tensor]]:
        """The module's weights (as the model computes with them, in float32) on the main rank.
        Under ZeRO-3 each module's partitions are gathered in turn, so no rank ever holds more
        than one module's full parameters besides the main rank's CPU copy."""
        values = {}
        for module in self.model.modules():
            params = list(module.parameters(recurse=False))
            with gathered(params):
                if self.is_main:
                    values.update({id(p): p.detach().float().cpu().clone() for p in params})
        if not self.is_main:
            return None
        return {k: values[id(t)] if id(t) in values else t.detach().cpu().clone()
                for k, t in self.model.state_dict(keep_vars=True).items()}

    def save_final(self, checkpoints: CheckpointManager) -> None:
        """Consolidate the newest checkpoint into the ordinary weights file ``<output_model_path>``
        (fp32 master weights, whatever the stage and precision).  The Trainer always checkpoints
        the last step, so that checkpoint holds the final model."""
        if self._last is None:
            raise CheckpointError("no DeepSpeed checkpoint was written in this run; nothing to consolidate")
        if self.is_main:
            directory, tag = self._last
            weights = read_deepspeed_weights(directory, tag)
            own = set(self.model.state_dict())
            if checkpoints.saved_keys is not None:      # e.g. LoRA: the adapters only
                own = set(checkpoints.saved_keys(self.model))
                weights = {k: v for k, v in weights.items() if k in own}
            if set(weights) != own:
                raise CheckpointError(f"the consolidated weights of {directory}/{tag} do not match the model: "
                                      f"missing {sorted(own - set(weights))[:8]}, "
                                      f"unexpected {sorted(set(weights) - own)[:8]}")
            save_state(weights, checkpoints.prefix)
        self.barrier()


def split_checkpoint_path(path: str) -> Tuple[str, Optional[str]]:
    """A checkpoint is named by its tag directory (``out.bin.deepspeed/step500``) or by the save
    directory (``out.bin.deepspeed``: its 'latest' tag).  Returns (save directory, tag or None)."""
    path = os.path.normpath(path)
    if os.path.isfile(os.path.join(path, "latest")):
        return path, None
    if os.path.isdir(path) and glob.glob(os.path.join(path, "*model_states.pt")):
        return os.path.dirname(path), os.path.basename(path)
    raise CheckpointError(f"{path} is not a DeepSpeed checkpoint: expected a save directory with a 'latest' "
                          "file (<output_model_path>.deepspeed) or one of its step<N> directories")


def read_deepspeed_weights(directory: str, tag: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The full fp32 weights of a DeepSpeed checkpoint of any ZeRO stage, on the CPU, in one process
    (no launcher, no GPU).  ZeRO stages 1-3 keep the fp32 master weights partitioned in the
    optimizer files: DeepSpeed's zero_to_fp32 stitches them together.  Stage 0 checkpoints hold the
    whole module."""
    import_deepspeed()
    if tag is None:
        latest = os.path.join(directory, "latest")
        if not os.path.isfile(latest):
            raise CheckpointError(f"{directory} has no 'latest' file; name the checkpoint's step<N> directory")
        with open(latest, encoding="utf-8") as f:
            tag = f.read().strip()
    folder = os.path.join(directory, tag)
    if not os.path.isdir(folder):
        raise CheckpointError(f"DeepSpeed checkpoint {folder} does not exist")
    try:
        if glob.glob(os.path.join(folder, "*zero_pp_rank_*optim_states.pt")):
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
            # it prints progress lines, and would unpickle anything
            with contextlib.redirect_stdout(io.StringIO()), deepspeed_loads_restricted():
                state = get_fp32_state_dict_from_zero_checkpoint(directory, tag=tag)
        else:
            files = sorted(glob.glob(os.path.join(folder, "mp_rank_*_model_states.pt")))
            if not files:
                raise CheckpointError(f"{folder} holds no DeepSpeed model states (mp_rank_*_model_states.pt)")
            state = load_tensors_file(files[0], "DeepSpeed checkpoint file", allowed=deepspeed_safe_classes())
            if not isinstance(state, dict) or not isinstance(state.get("module"), dict):
                raise CheckpointError(f"{files[0]} holds no 'module' state dict: not a DeepSpeed model states file")
            state = state["module"]
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot consolidate the DeepSpeed checkpoint {folder}: {type(e).__name__}: "
                              f"{str(e)[:300]}")
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).contiguous().clone()
            for k, v in state.items()}
