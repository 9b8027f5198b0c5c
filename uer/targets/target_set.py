import torch
from torch import nn

from uer.config import ModelConfig
from uer.registry import TARGETS


class TargetSet(nn.Module):
    """The configured targets; their losses are summed, every other entry is passed through."""

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        for name in config.target:
            self.add_module(name, TARGETS.get(name)(config, embedding))
        self.names = list(config.target)

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        out, total = {}, None
        for name in self.names:
            result = dict(self._modules[name](hidden, batch))
            loss = result.pop("loss")
            total = loss if total is None else total + loss
            out.update(result)
        out["loss"] = total
        return out
