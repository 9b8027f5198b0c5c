"""Average the weights of several checkpoints (UER-py's scripts/average_models.py), e.g. the last
few step checkpoints of one run.

Every checkpoint must have the same keys with the same shapes as the first (the first mismatching
key is named otherwise).  Floating-point tensors are summed in float32 and divided once, then cast
back to the first checkpoint's dtype, so fp16/bf16 checkpoints neither overflow nor lose the small
differences being averaged.  Non-floating tensors (counters, index buffers) must be equal in every
checkpoint and are kept as they are.  Files are read one at a time without executing pickled code;
the peak memory is one checkpoint plus the float32 sums."""

import logging
from typing import Dict, List

import torch

from uer.errors import CheckpointError
from uer.models.weights import read_weights

logger = logging.getLogger("uer")


def _check_same_layout(reference: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor],
                       first: str, path: str) -> None:
    for key in reference:
        if key not in state:
            raise CheckpointError(f"{path} has no tensor {key!r}, which {first} has; only checkpoints of "
                                  "the same model can be averaged")
        if tuple(state[key].shape) != tuple(reference[key].shape):
            raise CheckpointError(f"{key!r} has shape {tuple(state[key].shape)} in {path} but "
                                  f"{tuple(reference[key].shape)} in {first}; only checkpoints of the same "
                                  "model (and vocabulary) can be averaged")
    for key in state:
        if key not in reference:
            raise CheckpointError(f"{path} has a tensor {key!r} that {first} lacks; only checkpoints of the "
                                  "same model can be averaged")


def average_checkpoints(paths: List[str]) -> Dict[str, torch.Tensor]:
    if len(paths) < 1:
        raise CheckpointError("give at least one checkpoint to average")
    first = paths[0]
    reference = read_weights(first)
    dtypes = {k: v.dtype for k, v in reference.items()}
    sums = {k: v.float().clone() if v.is_floating_point() else v.clone() for k, v in reference.items()}
    for path in paths[1:]:
        state = read_weights(path)
        _check_same_layout(reference, state, first, path)
        for key, value in state.items():
            if sums[key].is_floating_point():
                if not value.is_floating_point():
                    raise CheckpointError(f"{key!r} is {value.dtype} in {path} but {dtypes[key]} in {first}")
                if value.dtype != dtypes[key]:
                    logger.warning("%s is %s in %s but %s in %s; the average keeps %s", key, value.dtype,
                                   path, dtypes[key], first, dtypes[key])
                sums[key] += value.float()
            elif not torch.equal(value, sums[key]):
                raise CheckpointError(f"{key!r} is a {value.dtype} tensor whose values differ between {first} "
                                      f"and {path}; non-floating tensors cannot be averaged")
        del state
    n = len(paths)
    averaged = {}
    for key, total in sums.items():
        if total.is_floating_point():
            mean = total / n
            if not torch.isfinite(mean).all():
                raise CheckpointError(f"the average of {key!r} is not finite (a checkpoint holds inf/nan "
                                      "there); non-finite weights are never written")
            averaged[key] = mean.to(dtypes[key])
        else:
            averaged[key] = total
    return averaged
