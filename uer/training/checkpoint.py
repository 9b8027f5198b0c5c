"""Training checkpoints, UER-py compatible in naming.

For ``--output_model_path models/out.bin`` a checkpoint at step N is two files, each written
atomically (temporary file + rename):

    models/out.bin-N             model weights only (what finetune/ and inference/ load)
    models/out.bin-N.state.pt    optimizer, scheduler, step, RNG states, data position, config

The state file is written after the weights, so a state file always has its weights.  The final
model is also written to ``models/out.bin``.

``saved_keys(model) -> keys`` narrows what the weights files hold (LoRA: the adapters and other
trained parameters, ``uer.models.lora.lora_state_keys``); a checkpoint is then loaded over a model
whose other weights are already in place, strictly for those keys.
"""

import glob
import os
import re
import shutil
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from uer.errors import CheckpointError
from uer.models.weights import load_weights, model_state, read_weights, save_state, save_weights
from uer.safe_load import load_tensors_file
from uer.utils import atomic_torch_save

STATE_SUFFIX = ".state.pt"


class CheckpointManager:
    def __init__(self, output_model_path: str,
                 saved_keys: Optional[Callable[[nn.Module], List[str]]] = None):
        self.prefix = output_model_path
        self.saved_keys = saved_keys

    def weights_path(self, step: int) -> str:
        return f"{self.prefix}-{step}"

    def state_path(self, step: int) -> str:
        return self.weights_path(step) + STATE_SUFFIX

    def select(self, model, weights: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The part of a full state dict the weights files hold (all of it unless ``saved_keys``)."""
        if self.saved_keys is None:
            return weights
        return {k: weights[k] for k in self.saved_keys(model)}

    def _save_weights(self, model, path: str) -> None:
        if self.saved_keys is None:
            save_weights(model, path)
        else:
            save_state(self.select(model, model_state(model)), path)

    def load_model(self, model, weights: Dict[str, torch.Tensor], source: str) -> None:
        """Load a checkpoint's weights strictly: the whole model, or exactly ``saved_keys``."""
        if self.saved_keys is None:
            load_weights(model, weights, source=source)
            return
        expected = set(self.saved_keys(model))
        missing = sorted(expected - set(weights))
        if missing:
            raise CheckpointError(f"checkpoint {source} lacks {len(missing)} of the weights this run trains "
                                  f"({', '.join(missing[:6])}); resume with the same --use_lora/--lora_* and "
                                  "--freeze_prefixes settings")
        others = tuple(k for k in model.state_dict() if k not in expected)
        load_weights(model, weights, allow_missing=others, source=source)

    def save(self, step: int, model, state: dict) -> str:
        self._save_weights(model, self.weights_path(step))
        atomic_torch_save(dict(state, step=step, weights=os.path.basename(self.weights_path(step))),
                          self.state_path(step))
        return self.state_path(step)

    def save_final(self, model) -> None:
        self._save_weights(model, self.prefix)

    def earlier_run_files(self) -> List[str]:
        """What a run into this place has written that a new run would overwrite or mix with: step
        checkpoints and their state files, a DeepSpeed checkpoint directory, the final weights."""
        from uer.training.engines.deepspeed_engine import DIR_SUFFIX
        pattern = re.compile(re.escape(os.path.basename(self.prefix)) + r"-\d+(" + re.escape(STATE_SUFFIX) + ")?$")
        found = [p for p in glob.glob(glob.escape(self.prefix) + "-*") if pattern.fullmatch(os.path.basename(p))]
        found += [p for p in (self.prefix, self.prefix + DIR_SUFFIX) if os.path.exists(p)]
        return sorted(found)

    def remove_earlier_run(self) -> List[str]:
        """Delete ``earlier_run_files`` (a run started over with --overwrite), so that a later
        --resume can never pick up a checkpoint of the run it replaced."""
        found = self.earlier_run_files()
        for path in found:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return found

    def latest(self) -> Optional[str]:
        pattern = re.compile(re.escape(os.path.basename(self.prefix)) + r"-(\d+)" + re.escape(STATE_SUFFIX) + "$")
        found = []
        for path in glob.glob(glob.escape(self.prefix) + "-*" + STATE_SUFFIX):
            m = pattern.search(os.path.basename(path))
            if m:
                found.append((int(m.group(1)), path))
        return max(found)[1] if found else None

    @staticmethod
    def load(state_path: str) -> dict:
        if not os.path.isfile(state_path):
            raise CheckpointError(f"training state {state_path} does not exist")
        state = load_tensors_file(state_path, "training state")
        if not isinstance(state, dict) or "weights" not in state or "engine" not in state:
            raise CheckpointError(f"{state_path} is not a uer training state (expected the "
                                  f"<output_model_path>-<step>{STATE_SUFFIX} file pretrain.py writes)")
        weights = os.path.join(os.path.dirname(state_path), state["weights"])
        state["model"] = read_weights(weights)
        return state
