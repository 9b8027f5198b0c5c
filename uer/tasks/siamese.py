"""Two-tower sentence-pair classification (UER-py run_classifier_siamese.py, Sentence-BERT style):
``label\ttext_a\ttext_b`` rows with a header.  Each text is encoded on its own by the one shared
backbone ([CLS] text [SEP]), pooled to u and v, and a linear layer classifies [u; v; |u-v|; u*v].
Accuracy / macro-F1, confusion matrix and UER-py's prediction file, as run_classifier.

The pair reading and collating here are shared with SimCSE (``uer.tasks.simcse``)."""

import argparse
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.pooling import pool
from uer.registry import HEADS, TASKS
from uer.targets.metrics import accuracy
from uer.tasks.base import TaskData, split_flag
from uer.tasks.classification import ClassificationTask, encode_pair, pad_examples
from uer.tasks.heads import Encode, Head
from uer.tasks.tsv import read_tsv


# ------------------------------------------------------------------------------------------------
# Pairs of separately encoded texts (shared with SimCSE)
# ------------------------------------------------------------------------------------------------

def encode_single(tokenizer, text: str, seq_length: int) -> np.ndarray:
    """[CLS] text [SEP], truncated to ``seq_length``: how each tower sees its text."""
    return encode_pair(tokenizer, text, None, seq_length)["src"]


def read_pairs(tokenizer, seq_length: int, path: str, split: str, required: Sequence[str],
               optional: Sequence[str] = ()) -> List[dict]:
    """One example per TSV row: ``src_a`` / ``src_b`` token ids of text_a / text_b (text_b absent:
    text_a again), ``line``, and the raw ``row`` for the caller's label parsing."""
    examples = []
    for line, row in read_tsv(path, required, optional, flag=split_flag(split)):
        text_b = row.get("text_b", row["text_a"])
        examples.append({"src_a": encode_single(tokenizer, row["text_a"], seq_length),
                         "src_b": encode_single(tokenizer, text_b, seq_length), "line": line, "row": row})
    return examples


class PairCollator:
    """Pads both texts of every pair to one common width, so that a head can run the backbone once
    over the 2B rows [a_1 .. a_B, b_1 .. b_B].  Batch: src/seg (text_a), src_b/seg_b (text_b), seg 1
    on real tokens (UER-py's towers), ``labels`` from ``label_of(examples)`` when given."""

    def __init__(self, pad_id: int, label_of=None, pad_multiple: int = 8):
        self.pad_id, self.label_of, self.pad_multiple = pad_id, label_of, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        src_a, seg_a = pad_examples(items, self.pad_id, self.pad_multiple, key="src_a")
        src_b, seg_b = pad_examples(items, self.pad_id, self.pad_multiple, key="src_b")
        width = max(src_a.shape[1], src_b.shape[1])
        widen = lambda x, value: np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=value)  # noqa: E731
        out = {"src": torch.from_numpy(widen(src_a, self.pad_id)), "seg": torch.from_numpy(widen(seg_a, 0)),
               "src_b": torch.from_numpy(widen(src_b, self.pad_id)), "seg_b": torch.from_numpy(widen(seg_b, 0)),
               "tokens": torch.tensor(int((seg_a > 0).sum() + (seg_b > 0).sum()))}
        labels = self.label_of(items) if self.label_of is not None else None
        if labels is not None:
            out["labels"] = labels
        return out


def encode_towers(encode: Encode, batch: dict, pooling: str):
    """(u, v): the pooled vectors of text_a and text_b, each (B, H), from one backbone pass over
    the 2B rows (each row has its own dropout mask, which SimCSE's two views rely on)."""
    src = torch.cat([batch["src"], batch["src_b"]])
    seg = torch.cat([batch["seg"], batch["seg_b"]])
    return pool(encode(src, seg), seg, pooling).chunk(2)


# ------------------------------------------------------------------------------------------------
# The siamese head and task
# ------------------------------------------------------------------------------------------------

@HEADS.register("siamese")
class SiameseHead(Head):
    """linear([u; v; |u - v|; u * v]) -> logits (UER-py SiameseClassifier.classifier).  Hugging Face
    has no two-tower classifier, so it does not convert (``hf_kind`` None)."""
    hf_kind = None

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pooling = config.pooling
        self.classifier = nn.Linear(4 * config.hidden_size, config.labels_num)

    def run(self, encode: Encode, batch: dict) -> torch.Tensor:
        u, v = encode_towers(encode, batch, self.pooling)
        return self(u, v)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """u, v: (B, H) -> logits (B, labels_num)."""
        return self.classifier(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        loss = F.cross_entropy(logits.float(), batch["labels"])
        return {"loss": loss, "cls_loss": loss.detach(), "cls_acc": accuracy(logits, batch["labels"])}


def stacked_labels(items: List[dict]) -> Optional[torch.Tensor]:
    return torch.tensor([item["label"] for item in items], dtype=torch.long) if "label" in items[0] else None


@TASKS.register("siamese")
class SiameseTask(ClassificationTask):
    """Classification of (text_a, text_b) by two towers; labels, metrics, label checks and the
    prediction file are run_classifier's (``ClassificationTask``), only reading and the head differ."""

    name = "siamese"
    head = "siamese"
    primary_metric = "accuracy"
    columns_required = ("text_a", "text_b")
    columns_optional = ()

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        # run_classifier's flags without --soft_targets (no teacher logits for two towers);
        # --pooling is the model-config override (default: the config's, "first").
        parser.add_argument("--labels_num", type=int, default=None,
                            help="Default: inferred from the train labels (fine-tuning), the model's (inference).")
        if not training:
            parser.add_argument("--output_logits", action="store_true")
            parser.add_argument("--output_prob", action="store_true")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "SiameseTask":
        return cls(tokenizer, args.seq_length, args.labels_num, getattr(args, "output_logits", False),
                   getattr(args, "output_prob", False))

    def read(self, path: str, split: str) -> TaskData:
        labelled = split != "infer"
        examples = read_pairs(self.tokenizer, self.seq_length, path, split,
                              self.columns_required + (("label",) if labelled else ()))
        for example in examples:
            row = example.pop("row")
            if labelled:
                example["label"] = self.parse_label(row["label"], path, example["line"])
        return TaskData(examples, path, split)

    def collator(self) -> PairCollator:
        return PairCollator(self.tokenizer.vocab.pad_id, stacked_labels)
