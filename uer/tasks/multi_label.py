"""Multi-label classification (UER-py run_classifier_multi_label.py): the label column holds the
comma-separated ids of every label an example has (``0,3``; empty for none); the classifier head
with one sigmoid output per label, binary cross-entropy, a decision threshold, micro/macro F1."""

import argparse
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.registry import TASKS
from uer.tasks.base import TaskData, split_flag
from uer.tasks.classification import ClassificationCollator, TextClassificationTask
from uer.tasks.metrics import multi_label_metrics


def bce_loss(outputs: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
    labels = batch["labels"].float()
    loss = F.binary_cross_entropy_with_logits(outputs.float(), labels)
    acc = ((outputs > 0).float() == labels).all(-1).float().mean()
    return {"loss": loss, "bce_loss": loss.detach(), "exact_match": acc.detach()}


@TASKS.register("multi_label")
class MultiLabelTask(TextClassificationTask):
    name = "multi_label"
    head = "classifier"
    primary_metric = "micro_f1"

    def __init__(self, tokenizer, seq_length: int, labels_num: Optional[int] = None, threshold: float = 0.5):
        super().__init__(tokenizer, seq_length)
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"--threshold must be in (0, 1), got {threshold}")
        self.labels_num, self.threshold = labels_num, threshold

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        parser.add_argument("--labels_num", type=int, default=None,
                            help="Default: 1 + the largest label id in the train file (fine-tuning).")
        parser.add_argument("--threshold", type=float, default=None,
                            help="A label is predicted when its probability exceeds this; default 0.5, "
                                 "for inference what fine-tuning used.")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "MultiLabelTask":
        threshold = args.threshold if args.threshold is not None else saved.get("threshold", 0.5)
        return cls(tokenizer, args.seq_length, args.labels_num or saved.get("labels_num"), threshold)

    def info(self) -> dict:
        return {"threshold": self.threshold}

    def parse_label(self, value: str, path: str, line: int) -> List[int]:
        ids = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.isdigit():
                raise DataError(f"{path} line {line}: label {value!r} must be comma-separated label ids "
                                "such as 0,3 (empty for none)")
            ids.append(int(part))
        if self.labels_num and any(i >= self.labels_num for i in ids):
            raise DataError(f"{path} line {line}: label id {max(ids)} is outside 0..{self.labels_num - 1}")
        return sorted(set(ids))

    def read(self, path: str, split: str) -> TaskData:
        data = super().read(path, split)
        data.extra["label_ids"] = [e.pop("label") for e in data.examples] if data.labelled else []
        return data

    def _vectors(self, data: TaskData, labels_num: int) -> None:
        for example, ids in zip(data.examples, data.extra["label_ids"]):
            vector = np.zeros(labels_num, dtype=np.float32)
            vector[ids] = 1.0
            example["label"] = vector

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        seen = max((max(ids) for ids in train.extra["label_ids"] if ids), default=-1) + 1
        config.labels_num = self.labels_num = self.labels_num or max(2, seen)
        self._vectors(train, config.labels_num)

    def check_data(self, data: TaskData, config: ModelConfig) -> None:
        for example, ids in zip(data.examples, data.extra["label_ids"]):
            if ids and max(ids) >= config.labels_num:
                raise DataError(f"{split_flag(data.split)} {data.path} line {example['line']}: label id {max(ids)} "
                                f"is outside the {config.labels_num} labels of the train file; pass --labels_num")
        self._vectors(data, config.labels_num)

    def loss(self):
        return bce_loss

    def collator(self) -> ClassificationCollator:
        return ClassificationCollator(self.tokenizer.vocab.pad_id, label_dtype=torch.float32)

    def predicted(self, outputs: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-outputs)) > self.threshold).astype(np.int64)

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        gold = np.stack([e["label"] for e in data.examples]).astype(np.int64)
        return multi_label_metrics(gold, self.predicted(outputs))

    def summary(self, scores: Dict[str, float]) -> str:
        return (f"micro-F1: {scores['micro_f1']:.4f} macro-F1: {scores['macro_f1']:.4f} "
                f"exact match: {scores['subset_accuracy']:.4f}")

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """A header, then the comma-separated predicted label ids of each line (empty for none)."""
        return ["label"] + [",".join(str(i) for i in np.flatnonzero(row)) for row in self.predicted(outputs)]
