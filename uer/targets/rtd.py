import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.activations import ACTIVATIONS
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields


@TARGETS.register("rtd")
class ReplacedTokenDetectionTarget(BatchFields, nn.Module):
    """ELECTRA's discriminator head: for every real token, was it replaced?  ``rtd_labels`` (B, L)
    holds 1 for replaced and 0 for original tokens; padding (seg == 0) is ignored.

    It asks nothing of the data: a composite pretrainer makes ``rtd_labels`` by corrupting the
    positions that the "mlm" target it is configured with has masked (mlm's collate step)."""

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.linear_2 = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        logits = self.linear_2(self.act(self.linear_1(hidden))).squeeze(-1)       # (B, L)
        labels = batch["rtd_labels"].float()
        real = (batch["seg"] > 0).float()
        per_token = F.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
        loss = (per_token * real).sum() / real.sum().clamp(min=1)
        with torch.no_grad():
            predicted = (logits > 0).float() * real
            replaced = labels * real
            hits = (predicted * replaced).sum()
            metrics = {
                "rtd_loss": loss.detach(),
                "rtd_acc": ((predicted == replaced).float() * real).sum() / real.sum().clamp(min=1),
                "rtd_precision": hits / predicted.sum().clamp(min=1),
                "rtd_recall": hits / replaced.sum().clamp(min=1),
            }
        return {"loss": loss, **metrics}

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        return 6.0 * (config.hidden_size * config.hidden_size + config.hidden_size)
