"""Multi-task classification (UER-py run_classifier_mt.py): one shared backbone, one classifier head
per dataset, trained on all datasets at once by the one runner.

Every example carries the index of its dataset (``"dataset"``).  The train sets are concatenated,
so the runner's ordinary shuffled batches mix the datasets in proportion to their sizes (Muppet's
heterogeneous batches, Aghajanyan et al. 2021); each example is scored by its own dataset's head.
The dev sets are concatenated too: ``evaluate`` scores each dataset separately and the primary
metric, ``accuracy``, is the mean of the per-dataset accuracies, so the best model is the one best
on average, saved with every head.

Head outputs: with ``dataset_id`` in the batch, each row holds its own head's logits padded to the
widest head with a large negative value (so a batch of mixed datasets is one tensor and
cross-entropy / argmax over a row only see that head's classes); without it (inference over every
head, as UER-py's run_classifier_mt_infer.py does) the heads' logits side by side, (B, sum(n_i)).
"""

import argparse
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.layers.pooling import ClassificationHead
from uer.registry import HEADS, TASKS
from uer.targets.metrics import accuracy
from uer.tasks.base import TaskData, split_flag
from uer.tasks.classification import (ClassificationCollator, TextClassificationTask, check_contiguous_labels,
                                      format_predictions)
from uer.tasks.heads import Head
from uer.tasks.metrics import classification_metrics
from uer.tasks.tsv import parse_label

PAD_LOGIT = -1e4        # fits fp16; exp(PAD_LOGIT - max) is 0 in every precision


@HEADS.register("multi_classifier")
class MultiClassifierHead(Head):
    """One UER-py classifier (pool, dense, tanh, dense) per dataset over the shared backbone.  Every
    head runs on every example (they are tiny) and rows are picked by ``dataset_id``, so every
    parameter takes part in every step (DDP / ZeRO need no unused-parameter search).
    ``loss_scaling``: Muppet's per-example loss / log(classes of its dataset)."""
    hf_kind = None           # Hugging Face has no several-heads classifier

    def __init__(self, config: ModelConfig, labels_num_list: Sequence[int], loss_scaling: bool = False):
        super().__init__()
        self.labels_num_list, self.loss_scaling = [int(n) for n in labels_num_list], bool(loss_scaling)
        if not self.labels_num_list or min(self.labels_num_list) < 2:
            raise ConfigError(f"multi-task heads need at least 2 labels each, got {self.labels_num_list}")
        self.heads = nn.ModuleList(ClassificationHead(config.hidden_size, n, config.pooling)
                                   for n in self.labels_num_list)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        logits = [head(hidden, batch["seg"]) for head in self.heads]
        if "dataset_id" not in batch:
            return torch.cat(logits, dim=-1)
        width = max(self.labels_num_list)
        padded = torch.stack([F.pad(x, (0, width - x.size(-1)), value=PAD_LOGIT) for x in logits])  # (K, B, W)
        ids = batch["dataset_id"]
        return padded[ids, torch.arange(ids.size(0), device=ids.device)]

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        labels = batch["labels"]
        per_example = F.cross_entropy(logits.float(), labels, reduction="none")
        if self.loss_scaling:
            classes = torch.tensor(self.labels_num_list, device=logits.device, dtype=torch.float32)
            per_example = per_example / classes[batch["dataset_id"]].log()
        loss = per_example.mean()
        return {"loss": loss, "cls_loss": loss.detach(), "cls_acc": accuracy(logits, labels)}


class MultiTaskCollator(ClassificationCollator):
    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        out = super().__call__(items, indices, epoch)
        if "dataset" in items[0]:
            out["dataset_id"] = torch.tensor([item["dataset"] for item in items], dtype=torch.long)
        return out


def dataset_files(directories: Sequence[str], split: str, required: bool = True) -> List[Optional[str]]:
    """``<dir>/<split>.tsv`` of every --dataset_path_list entry (UER-py's layout); a missing required
    file is one error naming the directory, the file and the flag."""
    if not directories:
        raise ConfigError("--dataset_path_list needs at least one directory holding train.tsv and dev.tsv")
    paths = []
    for i, directory in enumerate(directories):
        path = os.path.join(directory, f"{split}.tsv")
        if not os.path.isdir(directory):
            raise DataError(f"--dataset_path_list entry {i} ({directory}) is not a directory; each entry is a "
                            "directory holding train.tsv and dev.tsv (test.tsv optional)")
        if not os.path.isfile(path):
            if required:
                raise DataError(f"--dataset_path_list entry {i} ({directory}) has no {split}.tsv ({path} does not "
                                "exist); each entry must hold train.tsv and dev.tsv")
            path = None
        paths.append(path)
    return paths


@TASKS.register("classification_mt")
class MultiTaskClassificationTask(TextClassificationTask):
    """Single-label classification over several datasets.  Through the ordinary task command line a
    single --train_path is one dataset (dataset 0); ``read_datasets`` reads UER-py's
    --dataset_path_list layout."""

    name = "classification_mt"
    head = "multi_classifier"
    primary_metric = "accuracy"

    def __init__(self, tokenizer, seq_length: int, labels_num_list: Optional[Sequence[int]] = None,
                 dataset_id: Optional[int] = None, output_logits: bool = False, output_prob: bool = False,
                 loss_scaling: bool = False, dataset_names: Optional[Sequence[str]] = None):
        super().__init__(tokenizer, seq_length)
        self.labels_num_list = list(labels_num_list) if labels_num_list else None
        self.dataset_id, self.loss_scaling = dataset_id, loss_scaling
        self.output_logits, self.output_prob = output_logits, output_prob
        self.dataset_names = list(dataset_names or [])
        if self.labels_num_list and dataset_id is not None and not 0 <= dataset_id < len(self.labels_num_list):
            raise ConfigError(f"--dataset_id {dataset_id} is out of range: the model has "
                              f"{len(self.labels_num_list)} classifier heads (dataset ids "
                              f"0..{len(self.labels_num_list) - 1})")

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        parser.add_argument("--pooling", default=None, choices=["first", "last", "mean", "max"],
                            help="Fine-tuning default: first; inference: what the model was fine-tuned with.")
        if training:
            parser.add_argument("--loss_scaling", action="store_true",
                                help="Muppet's loss scaling: each example's loss / log(its dataset's classes).")
        else:
            parser.add_argument("--dataset_id", type=int, default=None,
                                help="Predict with this dataset's head only (0-based, the order of "
                                     "--dataset_path_list); default: every head, UER-py's 'a|b' columns.")
            parser.add_argument("--labels_num_list", type=int, nargs="+", default=None,
                                help="UER-py flag; checked against the heads the model was fine-tuned with.")
            parser.add_argument("--output_logits", action="store_true")
            parser.add_argument("--output_prob", action="store_true")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "MultiTaskClassificationTask":
        saved_list = (saved.get("head_options") or {}).get("labels_num_list")
        given = getattr(args, "labels_num_list", None)
        if given and saved_list and list(given) != list(saved_list):
            raise ConfigError(f"--labels_num_list {' '.join(map(str, given))} but the model was fine-tuned with "
                              f"heads of {' '.join(map(str, saved_list))} labels")
        return cls(tokenizer, args.seq_length, saved_list or given, getattr(args, "dataset_id", None),
                   getattr(args, "output_logits", False), getattr(args, "output_prob", False),
                   getattr(args, "loss_scaling", False) or bool((saved.get("head_options") or {}).get("loss_scaling")),
                   saved.get("datasets"))

    def info(self) -> dict:
        return {"labels_num_list": self.labels_num_list, "datasets": self.dataset_names}

    def head_options(self) -> dict:
        return {"labels_num_list": self.labels_num_list, "loss_scaling": self.loss_scaling}

    # ---------------------------------------------------------------- data
    def parse_label(self, value: str, path: str, line: int) -> int:
        return parse_label(value, path, line)

    def read(self, path: str, split: str, dataset: int = 0) -> TaskData:
        data = super().read(path, split)
        if split != "infer":
            for e in data.examples:
                e["dataset"] = dataset
        elif self.dataset_id is not None:
            for e in data.examples:
                e["dataset"] = self.dataset_id
        data.extra["datasets"] = [(path, 0, len(data))]
        return data

    def read_datasets(self, directories: Sequence[str], split: str) -> TaskData:
        """Every directory's ``<split>.tsv`` concatenated, each example tagged with its dataset."""
        parts = [self.read(path, split, i) for i, path in enumerate(dataset_files(directories, split))]
        self.dataset_names = list(directories)
        return concatenate(parts, split)

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        counts = []
        for i, (path, start, end) in enumerate(train.extra["datasets"]):
            part = TaskData(train.examples[start:end], path, "train")
            check_contiguous_labels(part)
            counts.append(max(2, max(e["label"] for e in part.examples) + 1))
        self.labels_num_list = counts
        config.labels_num = max(counts)

    def check_data(self, data: TaskData, config: ModelConfig) -> None:
        for e in data.examples:
            n = self.labels_num_list[e["dataset"]]
            if e["label"] >= n:
                path = data.extra["datasets"][e["dataset"]][0]
                raise DataError(f"{split_flag(data.split)} {path} line {e['line']}: label {e['label']} is outside "
                                f"0..{n - 1} (the labels of dataset {e['dataset']}'s train file)")

    def check_model(self, config: ModelConfig) -> None:
        if not self.labels_num_list:
            raise ConfigError("the model has no multi-task heads recorded (labels_num_list) in its .task.json; "
                              "use a model written by run_classifier_mt.py or pass --labels_num_list")
        if self.dataset_id is not None and not 0 <= self.dataset_id < len(self.labels_num_list):
            raise ConfigError(f"--dataset_id {self.dataset_id} is out of range: the model has "
                              f"{len(self.labels_num_list)} classifier heads (dataset ids "
                              f"0..{len(self.labels_num_list) - 1})")

    def collator(self) -> MultiTaskCollator:
        return MultiTaskCollator(self.tokenizer.vocab.pad_id)

    # ---------------------------------------------------------------- results
    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        scores: Dict[str, float] = {}
        accuracies, f1s = [], []
        for i, (_, start, end) in enumerate(data.extra["datasets"]):
            n = self.labels_num_list[i]
            part = classification_metrics([e["label"] for e in data.examples[start:end]],
                                          outputs[start:end, :n].argmax(-1).tolist())
            scores[f"accuracy_{i}"], scores[f"macro_f1_{i}"] = part["accuracy"], part["macro_f1"]
            accuracies.append(part["accuracy"])
            f1s.append(part["macro_f1"])
        scores["accuracy"], scores["macro_f1"] = float(np.mean(accuracies)), float(np.mean(f1s))
        scores["examples"] = len(data)
        return scores

    def summary(self, scores: Dict[str, float]) -> str:
        per = " ".join(f"[{i}] {scores[f'accuracy_{i}']:.4f}" for i in range(len(self.labels_num_list or []))
                       if f"accuracy_{i}" in scores)
        return f"mean accuracy: {scores['accuracy']:.4f} mean macro-F1: {scores['macro_f1']:.4f} (per dataset: {per})"

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """With --dataset_id: run_classifier_infer.py's file for that head.  Otherwise UER-py's
        run_classifier_mt_infer.py file: per line every head's label joined by '|' (and logits /
        probabilities, each head's values space-separated, heads joined by '|')."""
        if self.dataset_id is not None:
            return format_predictions(outputs[:, :self.labels_num_list[self.dataset_id]],
                                      self.output_logits, self.output_prob)
        bounds = np.cumsum([0] + self.labels_num_list)
        heads = [outputs[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        probs = [torch.softmax(torch.from_numpy(h).float(), dim=-1).numpy() for h in heads]
        lines = ["\t".join(["label"] + (["logits"] if self.output_logits else []) + (["prob"] if self.output_prob else []))]
        for j in range(len(outputs)):
            fields = ["|".join(str(int(h[j].argmax())) for h in heads)]
            if self.output_logits:
                fields.append("|".join(" ".join(f"{v:.4f}" for v in h[j]) for h in heads))
            if self.output_prob:
                fields.append("|".join(" ".join(f"{v:.4f}" for v in p[j]) for p in probs))
            lines.append("\t".join(fields))
        return lines


def concatenate(parts: Sequence[TaskData], split: str) -> TaskData:
    examples, spans, start = [], [], 0
    for part in parts:
        examples.extend(part.examples)
        spans.append((part.path, start, start + len(part)))
        start += len(part)
    return TaskData(examples, ";".join(p.path for p in parts), split, {"datasets": spans})

