"""Sentence and sentence-pair classification (``label\ttext_a[\ttext_b]`` with a header)."""

from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.pooling import ClassificationHead
from uer.models import build_backbone, init_weights
from uer.registry import TASKS
from uer.targets.metrics import accuracy
from uer.tasks.metrics import classification_metrics
from uer.tasks.tsv import parse_label, read_tsv


class Classifier(nn.Module):
    """Embedding + encoder of any pretrained checkpoint, plus a fresh classification head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding, self.encoder = build_backbone(config)
        self.head = ClassificationHead(config.hidden_size, config.labels_num, config.pooling)
        init_weights(self)

    def logits(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(src, seg), seg), seg)

    def forward(self, batch: dict) -> dict:
        logits = self.logits(batch["src"], batch["seg"])
        out = {"logits": logits}
        if "labels" in batch:
            loss = F.cross_entropy(logits.float(), batch["labels"])
            out.update(loss=loss, cls_loss=loss.detach(), cls_acc=accuracy(logits, batch["labels"]))
        return out


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


class ClassificationCollator:
    """Pads a list of encoded examples; the signature matches the pretraining collator."""

    def __init__(self, pad_id: int, pad_multiple: int = 8):
        self.pad_id, self.pad_multiple = pad_id, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        longest = max(len(item["src"]) for item in items)
        length = -(-longest // self.pad_multiple) * self.pad_multiple
        src = np.full((len(items), length), self.pad_id, dtype=np.int64)
        seg = np.zeros((len(items), length), dtype=np.int64)
        for i, item in enumerate(items):
            n, a = len(item["src"]), item["seg_a_len"]
            src[i, :n] = item["src"]
            seg[i, :a] = 1
            seg[i, a:n] = 2
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg),
               "tokens": torch.tensor(int((seg > 0).sum()))}
        if "label" in items[0]:
            out["labels"] = torch.tensor([item["label"] for item in items])
        return out


@TASKS.register("classification")
class ClassificationTask:
    """Reader + model + metric + prediction writer for text classification."""

    columns_required = ("text_a",)
    columns_optional = ("text_b", "label")
    primary_metric = "accuracy"          # the runner keeps the best dev model by it

    def __init__(self, tokenizer, seq_length: int):
        self.tokenizer, self.seq_length = tokenizer, seq_length

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "ClassificationTask":
        return cls(tokenizer, args.seq_length)

    def read(self, path: str, flag: str, with_labels: bool, labels_num: int = 0) -> List[dict]:
        required = self.columns_required + (("label",) if with_labels else ())
        examples = []
        for line, row in read_tsv(path, required, self.columns_optional, flag=flag):
            example = encode_pair(self.tokenizer, row["text_a"], row.get("text_b"), self.seq_length)
            if with_labels:
                example["label"] = parse_label(row["label"], path, line, labels_num)
            examples.append(example)
        return examples

    @staticmethod
    def labels_num(train: List[dict], requested: Optional[int] = None) -> int:
        return requested or max(2, max(e["label"] for e in train) + 1)

    @staticmethod
    def info() -> dict:
        return {}

    def build_model(self, config: ModelConfig) -> Classifier:
        return Classifier(config)

    def collator(self) -> ClassificationCollator:
        return ClassificationCollator(self.tokenizer.vocab.pad_id)

    @staticmethod
    def metrics(labels, predictions) -> Dict[str, float]:
        return classification_metrics(labels, predictions)

    @staticmethod
    def summary(scores: Dict[str, float]) -> str:
        return f"accuracy: {scores['accuracy']:.4f} macro-F1: {scores['macro_f1']:.4f}"

    @staticmethod
    def format_predictions(logits: np.ndarray, output_logits: bool, output_prob: bool,
                           examples=None) -> List[str]:
        """UER-py's prediction file: a header, then label [\t logits] [\t probabilities] per line."""
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
