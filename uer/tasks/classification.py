"""Sentence and sentence-pair classification (UER-py run_classifier: ``label\ttext_a[\ttext_b]``
with a header line)."""

import argparse
from typing import Dict, List, Optional

import numpy as np
import torch

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.layers.host_lengths import HostLengths
from uer.registry import TASKS
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.heads import build_task_model
from uer.tasks.metrics import classification_metrics, confusion_matrix, format_confusion, per_class_report
from uer.tasks.tsv import parse_label, read_tsv


def Classifier(config: ModelConfig):
    """The classification task model: backbone + the "classifier" head (pool, dense, tanh, dense)."""
    return build_task_model(config, "classifier")


def encode_pair(tokenizer, text_a: str, text_b: Optional[str], seq_length: int) -> Dict[str, object]:
    """[CLS] a [SEP] (b [SEP]), truncating the longer text first so both keep context."""
    vocab = tokenizer.vocab
    a = tokenizer.encode(text_a)
    b = tokenizer.encode(text_b) if text_b is not None else None
    budget = seq_length - (3 if b is not None else 2)
    if b is None:
        a = a[:budget]
    else:
        while len(a) + len(b) > budget:
            (a if len(a) >= len(b) else b).pop()
    src = [vocab.cls_id] + a + [vocab.sep_id]
    seg_a_len = len(src)
    if b is not None:
        src += b + [vocab.sep_id]
    return {"src": np.asarray(src, dtype=np.int64), "seg_a_len": seg_a_len}


def pad_examples(items: List[dict], pad_id: int, pad_multiple: int = 8, key: str = "src"):
    """(src, seg) arrays for encoded examples: seg 1 for text_a, 2 for text_b, 0 for padding."""
    longest = max(len(item[key]) for item in items)
    length = -(-longest // pad_multiple) * pad_multiple
    src = np.full((len(items), length), pad_id, dtype=np.int64)
    seg = np.zeros((len(items), length), dtype=np.int64)
    for i, item in enumerate(items):
        n, a = len(item[key]), item.get("seg_a_len", len(item[key]))
        src[i, :n] = item[key]
        seg[i, :a] = 1
        seg[i, a:n] = 2
    return src, seg


class ClassificationCollator:
    """Pads a list of encoded examples; the signature matches the pretraining collator.  Labels are
    whatever the examples hold under "label" (class ids, label vectors, scores), stacked."""

    def __init__(self, pad_id: int, pad_multiple: int = 8, label_dtype=torch.long):
        self.pad_id, self.pad_multiple, self.label_dtype = pad_id, pad_multiple, label_dtype

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        src, seg = pad_examples(items, self.pad_id, self.pad_multiple)
        # seg_lengths: the real-token counts known here on the host, so the model's masks (and
        # unpadding's stream size) need no device-to-host read per forward.
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg),
               "tokens": torch.tensor(int((seg > 0).sum())), "seg_lengths": HostLengths.of(seg)}
        if "label" in items[0]:
            out["labels"] = torch.as_tensor(np.asarray([item["label"] for item in items]), dtype=self.label_dtype)
        if "teacher_logits" in items[0]:
            out["teacher_logits"] = torch.as_tensor(np.stack([item["teacher_logits"] for item in items]),
                                                    dtype=torch.float32)
        return out


class TextClassificationTask(Task):
    """What every TSV text(-pair) task shares: reading rows, encoding text_a/text_b, the collator.
    Subclasses say how a label is parsed and how outputs are scored and written."""

    columns_required = ("text_a",)
    columns_optional = ("text_b",)
    kept_columns: tuple = ()       # further columns copied into each example as they are (dbqa's qid)
    label_column = "label"

    def parse_label(self, value: str, path: str, line: int):
        raise NotImplementedError

    def read(self, path: str, split: str) -> TaskData:
        labelled = split != "infer"
        required = self.columns_required + ((self.label_column,) if labelled else ())
        optional = self.columns_optional + (() if labelled else (self.label_column,))
        examples = []
        for line, row in read_tsv(path, required, optional, flag=split_flag(split)):
            example = encode_pair(self.tokenizer, row["text_a"], row.get("text_b"), self.seq_length)
            example["line"] = line
            example.update((name, row[name]) for name in self.kept_columns)
            if labelled:
                example["label"] = self.parse_label(row[self.label_column], path, line)
            examples.append(example)
        return TaskData(examples, path, split)

    def collator(self) -> ClassificationCollator:
        return ClassificationCollator(self.tokenizer.vocab.pad_id)

    def prediction_lengths(self, data: TaskData) -> Optional[List[int]]:
        """With this family's collator one example is one row and padding is masked: batching by length
        changes no output.  A subclass with another collator (siamese's two towers ...) keeps the order."""
        if not isinstance(self.collator(), ClassificationCollator):
            return None
        return [len(e["src"]) for e in data.examples]


@TASKS.register("classification")
class ClassificationTask(TextClassificationTask):
    """Single-label classification: cross-entropy, accuracy + macro-F1, UER-py's prediction file."""

    name = "classification"
    head = "classifier"
    primary_metric = "accuracy"

    def __init__(self, tokenizer, seq_length: int, labels_num: Optional[int] = None,
                 output_logits: bool = False, output_prob: bool = False, soft_alpha: Optional[float] = None):
        """``soft_alpha``: distil from the teacher logits in the train file's ``logits`` column
        (UER-py --soft_targets): alpha x MSE(student, teacher) + (1 - alpha) x cross-entropy."""
        super().__init__(tokenizer, seq_length)
        self.requested_labels = labels_num
        self.output_logits, self.output_prob = output_logits, output_prob
        if soft_alpha is not None and not 0.0 <= soft_alpha <= 1.0:
            raise ConfigError(f"--soft_alpha must be in [0, 1], got {soft_alpha}")
        self.soft_alpha = soft_alpha

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        parser.add_argument("--labels_num", type=int, default=None,
                            help="Default: inferred from the train labels (fine-tuning), the model's (inference).")
        parser.add_argument("--pooling", default=None, choices=["first", "last", "mean", "max"],
                            help="Fine-tuning default: first; inference: what the model was fine-tuned with.")
        if training:
            parser.add_argument("--soft_targets", action="store_true",
                                help="UER-py flag: knowledge distillation from the teacher logits in the train "
                                     "file's 'logits' column (space-separated, as run_classifier_infer.py "
                                     "--output_logits writes them).")
            parser.add_argument("--soft_alpha", type=float, default=0.5,
                                help="Weight of the soft (MSE to the teacher's logits) loss; 1 - alpha is "
                                     "the cross-entropy's.")
        else:
            parser.add_argument("--output_logits", action="store_true")
            parser.add_argument("--output_prob", action="store_true")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "ClassificationTask":
        return cls(tokenizer, args.seq_length, args.labels_num, getattr(args, "output_logits", False),
                   getattr(args, "output_prob", False),
                   args.soft_alpha if getattr(args, "soft_targets", False) else None)

    def read(self, path: str, split: str) -> TaskData:
        if self.soft_alpha is None or split != "train":
            return super().read(path, split)
        data = super().read(path, split)       # extra header columns (logits) are allowed
        from uer.tasks.distillation import read_teacher_logits
        teacher = read_teacher_logits(path, len(data), None, flag="--train_path")
        for example, logits in zip(data.examples, teacher):
            example["teacher_logits"] = logits
        return data

    def loss(self):
        if self.soft_alpha is None:
            return None
        from uer.tasks.distillation import distillation_loss
        alpha = self.soft_alpha

        def distil(logits, batch):
            loss = distillation_loss(logits, batch["teacher_logits"], batch["labels"], alpha)
            return {"loss": loss, "distill_loss": loss.detach(),
                    "cls_acc": (logits.argmax(-1) == batch["labels"]).float().mean()}
        return distil

    def parse_label(self, value: str, path: str, line: int) -> int:
        return parse_label(value, path, line, self.requested_labels or 0)

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        if not self.requested_labels:
            check_contiguous_labels(train)
        config.labels_num = self.requested_labels or max(2, max(e["label"] for e in train.examples) + 1)
        if self.soft_alpha is not None and train.examples[0]["teacher_logits"].size != config.labels_num:
            raise DataError(f"--train_path {train.path}: the teacher logits have "
                            f"{train.examples[0]['teacher_logits'].size} values per line but the task has "
                            f"{config.labels_num} labels; pass --labels_num or the teacher of this label set")

    def check_data(self, data: TaskData, config: ModelConfig) -> None:
        for e in data.examples:
            if e["label"] >= config.labels_num:
                raise DataError(f"{split_flag(data.split)} {data.path} line {e['line']}: label {e['label']} is "
                                f"outside 0..{config.labels_num - 1} (the train labels); fix the label or "
                                "pass --labels_num")

    def check_model(self, config: ModelConfig) -> None:
        if self.requested_labels and self.requested_labels != config.labels_num:
            raise ConfigError(f"--labels_num {self.requested_labels} but the model was fine-tuned with "
                              f"{config.labels_num} labels")

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        return classification_metrics([e["label"] for e in data.examples], outputs.argmax(-1).tolist())

    def summary(self, scores: Dict[str, float]) -> str:
        return f"accuracy: {scores['accuracy']:.4f} macro-F1: {scores['macro_f1']:.4f}"

    def log_details(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """The confusion matrix and per-class precision/recall/F1 (UER-py's run_classifier prints them)."""
        labels_num = outputs.shape[-1]
        gold, predicted = [e["label"] for e in data.examples], outputs.argmax(-1).tolist()
        return format_confusion(confusion_matrix(gold, predicted, labels_num),
                                per_class_report(gold, predicted, labels_num)).splitlines()

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """UER-py's prediction file: a header, then label [\t logits] [\t probabilities] per line."""
        return format_predictions(outputs, self.output_logits, self.output_prob)


def check_contiguous_labels(train: TaskData) -> None:
    """Without --labels_num the class count is max(label) + 1, so one stray label (99 in a binary
    task) would silently build a 100-class model: the train labels must be 0..n-1 with none missing.
    The error names the first label above a gap and its line."""
    seen = sorted({e["label"] for e in train.examples})
    gap = next((i for i, label in enumerate(seen) if label != i), None)
    if gap is None:
        return
    stray = seen[gap]
    line = next(e["line"] for e in train.examples if e["label"] == stray)
    missing = f"{gap}" if stray == gap + 1 else f"{gap}..{stray - 1}"
    raise DataError(f"--train_path {train.path} line {line}: label {stray} leaves class(es) {missing} with no "
                    f"train example (labels seen: {', '.join(map(str, seen[:12]))}{' ...' if len(seen) > 12 else ''}); "
                    f"class ids must be 0..n-1 — fix the label, or pass --labels_num {seen[-1] + 1} if those "
                    "classes really have no train examples")


def format_predictions(logits: np.ndarray, output_logits: bool, output_prob: bool) -> List[str]:
    header = ["label"] + (["logits"] if output_logits else []) + (["prob"] if output_prob else [])
    probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
    lines = ["\t".join(header)]
    for row, prob in zip(logits, probs):
        fields = [str(int(row.argmax()))]
        if output_logits:
            fields.append(" ".join(f"{v:.6f}" for v in row))
        if output_prob:
            fields.append(" ".join(f"{v:.6f}" for v in prob))
        lines.append("\t".join(fields))
    return lines
