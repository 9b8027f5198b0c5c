"""Process-group plumbing shared by the DDP and DeepSpeed engines: joining the group a launcher
(torchrun, the deepspeed launcher) describes in the environment, and the few collectives the
Trainer needs (mean of logged scalars, gathering one object per rank, a barrier)."""

import os
from datetime import timedelta
from typing import Dict, List

import torch
import torch.distributed as dist

from uer.errors import ConfigError

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launch_env(engine: str) -> Dict[str, int]:
    missing = [k for k in LAUNCH_ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"--engine {engine} runs one process per device under a launcher, which sets "
                          f"{', '.join(missing)}; start it as `torchrun --nproc_per_node N pretrain.py "
                          f"--engine {engine} ...`" + (" or with the `deepspeed` launcher" if engine == "deepspeed"
                                                      else "") + ", or use --engine local for one process")
    return {k: int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


def device_for(name: str, local_rank: int) -> torch.device:
    """``auto``: this process's GPU (cuda:LOCAL_RANK) when there are GPUs, else the CPU."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available; use --device cpu")
    return device


def init_process_group(engine: str, device_name: str = "auto", timeout_minutes: float = 30.0) -> torch.device:
    """Join the process group (gloo on the CPU, nccl on GPUs) and return this rank's device."""
    env = launch_env(engine)
    device = device_for(device_name, env["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(minutes=timeout_minutes))
    return device


def comm_device() -> torch.device:
    """Where collective tensors live: nccl only moves CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def reduce_mean(values: Dict[str, float]) -> Dict[str, float]:
    """Mean of each scalar over the ranks (every rank logs the same keys)."""
    if not dist.is_initialized() or dist.get_world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=comm_device())
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def gather(obj) -> List:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """End a successful run of a launched command: wait for every rank, then tear the process group
    down.  Without this a rank that finishes first (rank 0 still writing reports) exits with its
    gloo/nccl group alive, and the group's threads being destroyed at interpreter exit abort the
    process ("terminate called without an active exception", SIGABRT), so the launcher reports a
    failure after a run that succeeded.  A failed run does not come here: its peers may never
    reach the barrier, and the launcher stops them."""
    if not dist.is_initialized():
        return
    barrier()
    dist.destroy_process_group()
