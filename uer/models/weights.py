"""Model weight files: saved as plain tensor dicts, loaded without executing pickled code
(``torch.load(weights_only=True)`` or safetensors), strictly unless the caller names what may
be missing or ignored."""

import os
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from uer.errors import CheckpointError
from uer.safe_load import load_tensors_file
from uer.partitioned import full_shapes, gathered, has_partitioned_parameters
from uer.utils import atomic_path, atomic_torch_save


def model_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path) -> None:
    save_state(model_state(model), path)


def save_state(state: Dict[str, torch.Tensor], path) -> None:
    """Write a dict of CPU tensors atomically (safetensors when the name ends in .safetensors)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, tmp)
    else:
        atomic_torch_save(state, path)


def read_weights(path, mmap: bool = False) -> Dict[str, torch.Tensor]:
    """``mmap``: map a torch file instead of reading it (tensors are paged in when touched)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            state = load_file(path)
        except Exception as e:  # corrupt or foreign file: say which one, not safetensors' internals
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e)[:200]}. "
                                  "It may be truncated, or not a safetensors file")
    else:
        state = load_tensors_file(path, "checkpoint", mmap=mmap)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]   # a full training state file
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a dict of tensors (model weights)")
    return state


def _starts(key: str, prefixes: Iterable[str]) -> bool:
    return any(key.startswith(p) for p in prefixes)


def load_weights(model: nn.Module, path_or_state, *, allow_missing: Tuple[str, ...] = (),
                 ignore_unexpected: Tuple[str, ...] = (), source: Optional[str] = None) -> List[str]:
    """Load strictly.  ``allow_missing``: key prefixes the model may lack in the file (e.g. a new
    task head); ``ignore_unexpected``: key prefixes of the file to skip (e.g. pretraining targets);
    ``source``: the file a state dict was read from, for error messages.
    Returns the ignored keys.  Any other mismatch raises CheckpointError listing the keys."""
    is_path = isinstance(path_or_state, (str, os.PathLike))
    source = os.fspath(path_or_state) if is_path else (source or "<state dict>")
    if has_partitioned_parameters(model):
        return _load_partitioned(model, path_or_state, source, allow_missing, ignore_unexpected)
    state = read_weights(path_or_state) if is_path else path_or_state
    ignored = check_weights(model, state, source, allow_missing=allow_missing,
                            ignore_unexpected=ignore_unexpected)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return ignored


def check_weights(model: nn.Module, state: Dict[str, torch.Tensor], source: str = "<state dict>", *,
                  allow_missing: Tuple[str, ...] = (), ignore_unexpected: Tuple[str, ...] = ()) -> List[str]:
    """The checks of ``load_weights`` without loading (the model may live on the meta device).
    Returns the keys of ``state`` the model does not have (all allowed by ``ignore_unexpected``)."""
    own = full_shapes(model)
    missing = [k for k in own if k not in state and not _starts(k, allow_missing)]
    unexpected = [k for k in state if k not in own and not _starts(k, ignore_unexpected)]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {own[k]}"
              for k in own if k in state and tuple(state[k].shape) != own[k]]
    if missing or unexpected or shapes:
        from uer.convert.uer_py import looks_like_uer_py, uer_py_checkpoint_message
        if looks_like_uer_py(unexpected):     # UER-py's names: say so, and how to convert it
            raise CheckpointError(uer_py_checkpoint_message(source, unexpected))
        parts = []
        if missing:
            parts.append(f"missing from the file: {_short(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {_short(shapes)}")
        hint = ". Use the --config_path (and vocabulary) the checkpoint was trained with"
        if missing and all(k.endswith(".output_weight") for k in missing) and not unexpected:
            # The usual cause: a hand-written config that omits tie_weights, which a file means as
            # false (UER-py's default, uer.config.FILE_DEFAULTS), for weights trained tied.
            hint = (". The config asks for an untied output layer and the checkpoint was trained with a tied "
                    "one: add \"tie_weights\": true to the config (a config file that omits tie_weights means "
                    "false, as in UER-py)")
        raise CheckpointError(f"checkpoint {source} does not match the model config: " + "; ".join(parts) + hint)
    return [k for k in state if k not in own]


def _load_partitioned(model: nn.Module, path_or_state, source: str, allow_missing, ignore_unexpected) -> List[str]:
    """Load into a ZeRO-3 partitioned model without materialising the checkpoint on every rank:
    rank 0 alone reads the file (memory-mapped) and checks it; then, one module at a time, the
    module's parameters are gathered, rank 0 copies the file's values in, and DeepSpeed hands each
    rank back its partition.  The peak on a rank is one module's full parameters.  Collective."""
    import torch.distributed as dist
    is_main = dist.get_rank() == 0
    state, outcome = None, [None, []]
    if is_main or not isinstance(path_or_state, (str, os.PathLike)):
        try:
            state = read_weights(path_or_state, mmap=True) if isinstance(path_or_state, (str, os.PathLike)) \
                else path_or_state
            outcome[1] = check_weights(model, state, source, allow_missing=allow_missing,
                                       ignore_unexpected=ignore_unexpected)
        except CheckpointError as e:
            outcome[0] = str(e)
    dist.broadcast_object_list(outcome, src=0)      # every rank fails together, none hangs
    if outcome[0] is not None:
        raise CheckpointError(outcome[0])
    for prefix, module in model.named_modules():
        params = dict(module.named_parameters(prefix=prefix, recurse=False))
        with gathered(params.values(), modify=True), torch.no_grad():
            if state is not None:
                for name, param in params.items():
                    if name in state:
                        param.copy_(state[name].to(param.dtype))
        for name, buffer in module.named_buffers(prefix=prefix, recurse=False):
            if state is not None and name in state:
                buffer.copy_(state[name].to(buffer.dtype))
            dist.broadcast(buffer, src=0)
    return outcome[1]


def _short(keys: List[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")
