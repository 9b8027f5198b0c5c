"""Working with parameters that DeepSpeed ZeRO-3 has partitioned across the ranks.

A model built under ``deepspeed.zero.Init`` (pretrain.py and the fine-tuning scripts do so for
ZeRO-3) holds on each rank only a slice of every large parameter: ``p.data`` is a placeholder and
the full shape is ``p.ds_shape``.  The helpers here let the rest of uer read shapes, count
parameters, initialise and load weights without caring whether the model is partitioned.  They
import DeepSpeed only when a partitioned parameter is actually present, so models never depend on it.
"""

import contextlib
import sys
from typing import Dict, Iterable, Iterator, Tuple

import torch
from torch import nn


def is_partitioned(tensor: torch.Tensor) -> bool:
    return hasattr(tensor, "ds_id")


def full_shape(tensor: torch.Tensor) -> Tuple[int, ...]:
    return tuple(getattr(tensor, "ds_shape", tensor.shape))


def full_numel(tensor: torch.Tensor) -> int:
    return int(getattr(tensor, "ds_numel", tensor.numel()))


def has_partitioned_parameters(model: nn.Module) -> bool:
    return any(is_partitioned(p) for p in model.parameters())


def full_shapes(model: nn.Module) -> Dict[str, Tuple[int, ...]]:
    """state_dict key -> full shape, partitioned or not (a shared parameter appears under each of
    its names, as in ``state_dict()``)."""
    return {k: full_shape(v) for k, v in model.state_dict(keep_vars=True).items()}


@contextlib.contextmanager
def gathered(params: Iterable[torch.Tensor], modify: bool = False) -> Iterator[None]:
    """Make partitioned parameters whole for the duration of the block (a collective: every rank
    must enter it with the same parameters).  With ``modify``, rank 0's values are what every rank
    keeps afterwards.  Ordinary parameters pass through untouched."""
    partitioned = [p for p in params if is_partitioned(p)]
    if not partitioned:
        yield
        return
    import deepspeed
    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=0 if modify else None):
        yield


@contextlib.contextmanager
def built_whole() -> Iterator[None]:
    """Build modules unpartitioned even inside ``deepspeed.zero.Init`` — for a model that never
    enters the DeepSpeed engine (Fast-ELECTRA's frozen generator), whose parameters nobody would
    gather.  A no-op outside zero.Init."""
    if "deepspeed" not in sys.modules:
        yield
        return
    from deepspeed.runtime.zero import partition_parameters
    if partition_parameters.top_level_context is None:
        yield
        return
    partition_parameters.shutdown_init_context()
    try:
        yield
    finally:
        partition_parameters.restore_init_context()
