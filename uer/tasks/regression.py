"""Regression (UER-py run_regression.py): ``label\ttext_a[\ttext_b]`` with a real-valued label;
the classifier head with one output trained by mean squared error; MSE, Pearson and Spearman."""

from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from uer.config import ModelConfig
from uer.errors import DataError
from uer.registry import TASKS
from uer.tasks.base import TaskData
from uer.tasks.classification import ClassificationCollator, TextClassificationTask
from uer.tasks.metrics import regression_metrics


def mse_loss(outputs: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
    loss = F.mse_loss(outputs.float().squeeze(-1), batch["labels"].float())
    return {"loss": loss, "mse": loss.detach()}


@TASKS.register("regression")
class RegressionTask(TextClassificationTask):
    name = "regression"
    head = "classifier"          # one output; converts to BertForSequenceClassification(num_labels=1)
    primary_metric = "pearson"

    def parse_label(self, value: str, path: str, line: int) -> float:
        try:
            label = float(value)
        except ValueError:
            raise DataError(f"{path} line {line}: label {value!r} is not a number (regression targets are real "
                            "values, e.g. 3.5)") from None
        if not np.isfinite(label):
            raise DataError(f"{path} line {line}: label {value!r} is not a finite number")
        return label

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        config.labels_num = 1

    def loss(self):
        return mse_loss

    def collator(self) -> ClassificationCollator:
        return ClassificationCollator(self.tokenizer.vocab.pad_id, label_dtype=torch.float32)

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        return regression_metrics([e["label"] for e in data.examples], outputs[:, 0])

    def summary(self, scores: Dict[str, float]) -> str:
        return f"pearson: {scores['pearson']:.4f} spearman: {scores['spearman']:.4f} mse: {scores['mse']:.4f}"

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        return ["label"] + [f"{v:.6f}" for v in outputs[:, 0]]
