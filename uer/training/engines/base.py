"""The engine interface the Trainer talks to, with the single-process defaults.

An engine owns the model, optimizer, scheduler, precision and — when there is more than one
process — the communication between them.  The Trainer calls only:

    forward(batch) -> dict        backward(loss)        step() -> (grad_norm, skipped)
                                  each a Python number or a 0-dim tensor, possibly still on the
                                  device: the Trainer reads them at its next log step, so an
                                  engine need not (and the local engine does not) sync per step
    to_device(batch)   learning_rate()   state_dict() / load_state_dict()
    reduce_mean(values)            mean of logged scalars over the ranks (collective)
    gather(obj) -> list            one object per rank (collective)
    save_checkpoint(checkpoints, step, state)    called on every rank (collective)
    load_checkpoint(checkpoints, path, validate) -> trainer state
    latest_checkpoint(checkpoints) -> path or None
    save_final(checkpoints)        the final ordinary uer weights file (collective)
    full_state_dict() -> dict      the whole model's weights on the main rank (collective)
    weights_finite() -> bool       no NaN/inf in any rank's weights (collective; before each save)

and reads ``model`` (the unwrapped module, whose state_dict keys are the uer names), ``rank``,
``world_size``, ``is_main``, ``precision`` (for the MFU peak) and ``skipped_steps`` (at log steps
and saves only: reading it may sync).  Collective calls are made by every rank at
the same point of the loop; only the main rank writes files.
"""

from typing import Callable, Dict, List, Optional

import torch

from uer.models.weights import model_state
from uer.training.checkpoint import CheckpointManager
from uer.training.metrics import host_floats


class Engine:
    rank = 0
    world_size = 1
    is_main = True
    skipped_steps = 0
    precision = "fp32"

    # -- communication (no-ops in one process) -----------------------------------------------------
    def reduce_mean(self, values: Dict[str, float]) -> Dict[str, float]:
        return values

    def gather(self, obj) -> List:
        return [obj]

    def barrier(self) -> None:
        pass

    # -- checkpoints: the CheckpointManager format (<prefix>-N weights + <prefix>-N.state.pt) ------
    def save_checkpoint(self, checkpoints: CheckpointManager, step: int, state: dict) -> Optional[str]:
        path = checkpoints.save(step, self.model, state) if self.is_main else None
        self.barrier()      # nobody runs ahead (or exits) before the checkpoint is complete
        return path

    def latest_checkpoint(self, checkpoints: CheckpointManager) -> Optional[str]:
        return checkpoints.latest()

    def load_checkpoint(self, checkpoints: CheckpointManager, path: str,
                        validate: Callable[[dict], None] = lambda state: None) -> dict:
        """Load the model weights of the checkpoint at ``path`` and return the training state
        (the Trainer restores optimizer, scheduler, sampler and RNG from it).  ``validate`` sees
        the state before any weights are loaded."""
        state = CheckpointManager.load(path)
        validate(state)
        checkpoints.load_model(self.model, state.pop("model"), source=path)
        return state

    def full_state_dict(self) -> Optional[Dict]:
        """The whole model's weights on the CPU, on the main rank (None elsewhere).  Collective."""
        return model_state(self.model) if self.is_main else None

    def weights_finite(self) -> bool:
        """True when no weight on any rank is NaN or inf.  Collective.  Checks what this rank holds:
        the whole module, or its ZeRO-3 partition (``ds_tensor``) where parameters are partitioned."""
        flags = []
        with torch.no_grad():
            for p in self.model.parameters():
                local = getattr(p, "ds_tensor", None)
                local = p if local is None else local
                if local.numel() and local.is_floating_point():
                    flags.append(torch.isfinite(local).all())
        # One device-to-host copy for the whole model (this runs before each save, not per step).
        finite = all(v >= 1.0 for v in host_floats(flags))
        return self.reduce_mean({"finite": float(finite)})["finite"] >= 1.0

    def save_final(self, checkpoints: CheckpointManager) -> None:
        if self.is_main:
            checkpoints.save_final(self.model)
        self.barrier()
