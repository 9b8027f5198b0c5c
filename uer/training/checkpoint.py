"""Training checkpoints, UER-py compatible in naming.

For ``--output_model_path models/out.bin`` a checkpoint at step N is two files, each written
atomically (temporary file + rename):

    models/out.bin-N             model weights only (what finetune/ and inference/ load)
    models/out.bin-N.state.pt    optimizer, scheduler, step, RNG states, data position, config

The state file is written after the weights, so a state file always has its weights.  The final
model is also written to ``models/out.bin``.
"""

import glob
import os
import re
from typing import Optional

import torch

from uer.errors import CheckpointError
from uer.models.weights import read_weights, save_weights
from uer.utils import atomic_torch_save

STATE_SUFFIX = ".state.pt"


class CheckpointManager:
    def __init__(self, output_model_path: str):
        self.prefix = output_model_path

    def weights_path(self, step: int) -> str:
        return f"{self.prefix}-{step}"

    def state_path(self, step: int) -> str:
        return self.weights_path(step) + STATE_SUFFIX

    def save(self, step: int, model, state: dict) -> str:
        save_weights(model, self.weights_path(step))
        atomic_torch_save(dict(state, step=step, weights=os.path.basename(self.weights_path(step))),
                          self.state_path(step))
        return self.state_path(step)

    def save_final(self, model) -> None:
        save_weights(model, self.prefix)

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
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot read training state {state_path}: {type(e).__name__}: "
                                  f"{str(e)[:200]}; it may be truncated — resume from an earlier step")
        if not isinstance(state, dict) or "weights" not in state or "engine" not in state:
            raise CheckpointError(f"{state_path} is not a uer training state (expected the "
                                  f"<output_model_path>-<step>{STATE_SUFFIX} file pretrain.py writes)")
        weights = os.path.join(os.path.dirname(state_path), state["weights"])
        state["model"] = read_weights(weights)
        return state
