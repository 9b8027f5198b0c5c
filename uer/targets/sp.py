import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields, collate_instance_labels
from uer.targets.metrics import accuracy


@TARGETS.register("sp")
class SentencePredictionTarget(BatchFields, nn.Module):
    """Two-way sentence prediction on [CLS]: NSP with the bert processor, SOP with albert."""
    instance_fields = ("label",)            # is_next / is_in_order, from the processor
    instance_fields_hint = "bert or albert"

    @staticmethod
    def collate(state) -> None:
        collate_instance_labels(state, "sp_labels")

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        self.linear_1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.linear_2 = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        logits = self.linear_2(torch.tanh(self.linear_1(hidden[:, 0])))
        labels = batch["sp_labels"]
        loss = F.cross_entropy(logits.float(), labels)
        return {"loss": loss, "sp_loss": loss.detach(), "sp_acc": accuracy(logits, labels)}

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        return 0.0   # one prediction per sequence: negligible
