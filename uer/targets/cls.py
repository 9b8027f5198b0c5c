import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.pooling import ClassificationHead
from uer.registry import TARGETS
from uer.targets.batch_fields import BatchFields, collate_instance_labels
from uer.targets.metrics import accuracy


@TARGETS.register("cls")
class ClassificationTarget(BatchFields, nn.Module):
    """Sequence classification (pretraining on labelled text, e.g. the cls processor)."""
    instance_fields = ("label",)
    instance_fields_hint = "cls"

    @staticmethod
    def collate(state) -> None:
        collate_instance_labels(state, "cls_labels")

    def __init__(self, config: ModelConfig, embedding: nn.Module):
        super().__init__()
        self.head = ClassificationHead(config.hidden_size, config.labels_num, config.pooling)

    def forward(self, hidden: torch.Tensor, batch: dict) -> dict:
        logits = self.head(hidden, batch["seg"])
        labels = batch["cls_labels"]
        loss = F.cross_entropy(logits.float(), labels)
        return {"loss": loss, "cls_loss": loss.detach(), "cls_acc": accuracy(logits, labels)}

    def flops_per_token(self, config: ModelConfig, predicted_fraction: float) -> float:
        return 0.0
