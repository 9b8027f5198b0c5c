"""Reading and writing Hugging Face model directories without ``transformers``.

Read: ``config.json`` plus ``model.safetensors``, ``pytorch_model.bin`` (loaded with
``weights_only=True``: no pickled code runs) or their sharded ``*.index.json`` forms.  Write:
``config.json`` and ``model.safetensors``.
"""

import json
import os
from typing import Any, Dict, Optional, Tuple

import torch

from uer.errors import CheckpointError, ConfigError
from uer.safe_load import load_tensors_file
from uer.utils import read_json_object
from uer.utils import atomic_path, atomic_write_text

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def read_config(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{directory} has no config.json; pass a Hugging Face model directory "
                          "(save_pretrained output) as --input_dir")
    return read_json_object(path, path)


def _load_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except Exception as e:
            raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {str(e)[:200]}")
    state = load_tensors_file(path, "weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a dict of tensors")
    return state


def read_weights(directory: str, path: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], str]:
    """The directory's tensors (shards merged) and the file they came from (``path``: that file)."""
    if path is not None:
        if not os.path.isfile(path):
            raise CheckpointError(f"weights file {path} does not exist")
        return _rename_legacy(_load_file(path)), path
    for name in WEIGHT_FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".index.json"):
            with open(path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            state: Dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_load_file(os.path.join(directory, shard)))
        else:
            state = _load_file(path)
        return _rename_legacy(state), path
    raise CheckpointError(f"{directory} holds none of {', '.join(WEIGHT_FILES)}")


def _rename_legacy(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Old TensorFlow-converted files name LayerNorm parameters gamma/beta; transformers renames them
    on load and so do we."""
    out = {}
    for name, tensor in state.items():
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        out[name] = tensor
    return out


def write_dir(directory: str, config: Dict[str, Any], state: Dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file
    os.makedirs(directory, exist_ok=True)
    with atomic_path(os.path.join(directory, "model.safetensors")) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata={"format": "pt"})
    atomic_write_text(os.path.join(directory, "config.json"), json.dumps(config, indent=2) + "\n")
