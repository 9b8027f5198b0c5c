"""Sequence labelling (NER) in UER-py's format: a TSV with a header, ``text_a`` holding space-separated
tokens (characters for Chinese) and ``label`` the same number of space-separated BIO tags."""

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.models import build_backbone, init_weights
from uer.registry import TASKS
from uer.tasks.metrics import entity_metrics
from uer.tasks.tsv import read_tsv

logger = logging.getLogger("uer")

IGNORE = -100      # label of positions that take no part in loss or metrics ([CLS], extra pieces, padding)


class TaggingHead(nn.Module):
    """dropout -> linear on every position (Hugging Face's token-classification head, ``classifier``)."""

    def __init__(self, hidden_size: int, labels_num: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, labels_num)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(hidden))


class Tagger(nn.Module):
    """Embedding + encoder of any pretrained checkpoint, plus a fresh per-token head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding, self.encoder = build_backbone(config)
        self.head = TaggingHead(config.hidden_size, config.labels_num, config.dropout)
        init_weights(self)

    def logits(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embedding(src, seg), seg))

    def forward(self, batch: dict) -> dict:
        logits = self.logits(batch["src"], batch["seg"])
        out = {"logits": logits}
        if "labels" in batch:
            labels = batch["labels"]
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
            real = labels.ne(IGNORE)
            acc = (logits.argmax(-1).eq(labels) & real).sum().float() / real.sum().clamp(min=1)
            out.update(loss=loss, ner_loss=loss.detach(), ner_acc=acc.detach())
        return out


def read_label2id(path: str) -> Dict[str, int]:
    """A JSON object tag -> id with ids 0..n-1 (UER-py's label2id.json)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--label2id_path {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            label2id = json.load(f)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--label2id_path {path} is not valid JSON ({e}); expected e.g. "
                          '{"O": 0, "B-LOC": 1, "I-LOC": 2}')
    if not isinstance(label2id, dict) or not label2id or \
            not all(isinstance(k, str) and isinstance(v, int) for k, v in label2id.items()):
        raise ConfigError(f"--label2id_path {path} must be a JSON object mapping tags to integer ids, "
                          'e.g. {"O": 0, "B-LOC": 1, "I-LOC": 2}')
    if sorted(label2id.values()) != list(range(len(label2id))):
        raise ConfigError(f"--label2id_path {path}: the ids must be 0..{len(label2id) - 1}, each once; "
                          f"got {sorted(label2id.values())}")
    return label2id


def label2id_from_tags(tags: Sequence[str]) -> Dict[str, int]:
    """"O" first (id 0), then the other tags sorted, so the ids do not depend on the order of lines."""
    others = sorted(set(tags) - {"O"})
    return {tag: i for i, tag in enumerate(["O"] + others)}


class TaggingCollator:
    """Pads a list of encoded examples; the signature matches the pretraining collator."""

    def __init__(self, pad_id: int, pad_multiple: int = 8):
        self.pad_id, self.pad_multiple = pad_id, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        longest = max(len(item["src"]) for item in items)
        length = -(-longest // self.pad_multiple) * self.pad_multiple
        src = np.full((len(items), length), self.pad_id, dtype=np.int64)
        seg = np.zeros((len(items), length), dtype=np.int64)
        for i, item in enumerate(items):
            src[i, :len(item["src"])] = item["src"]
            seg[i, :len(item["src"])] = 1
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg),
               "tokens": torch.tensor(int((seg > 0).sum()))}
        if "label" in items[0]:
            labels = np.full((len(items), length), IGNORE, dtype=np.int64)
            for i, item in enumerate(items):
                labels[i, :len(item["label"])] = item["label"]
            out["labels"] = torch.from_numpy(labels)
        return out


@TASKS.register("ner")
class TaggingTask:
    """Reader + model + metric + prediction writer for sequence labelling (UER-py run_ner.py)."""

    columns_required = ("text_a",)
    primary_metric = "f1"

    def __init__(self, tokenizer, seq_length: int, label2id: Optional[Dict[str, int]] = None,
                 label2id_source: str = ""):
        self.tokenizer, self.seq_length = tokenizer, seq_length
        self.label2id = label2id
        self.label2id_source = label2id_source      # named in unknown-tag errors

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "TaggingTask":
        """``--label2id_path`` if given, else the map saved beside a fine-tuned model, else (fine-tuning)
        built from the train tags when the train file is read."""
        path = getattr(args, "label2id_path", None)
        if path:
            label2id = read_label2id(path)
            if saved.get("label2id") and saved["label2id"] != label2id:
                # Same tags in another order would silently rename every prediction.
                raise ConfigError(f"--label2id_path {path} ({label2id}) differs from the label2id the model was "
                                  f"fine-tuned with ({saved['label2id']}, in <load_model_path>.task.json); drop "
                                  "--label2id_path or pass the file used for fine-tuning")
            return cls(tokenizer, args.seq_length, label2id, f"--label2id_path {path}")
        if saved.get("label2id"):
            return cls(tokenizer, args.seq_length, dict(saved["label2id"]), "the label2id saved with the model")
        return cls(tokenizer, args.seq_length)

    # ---------------------------------------------------------------- reading
    def encode_tokens(self, tokens: List[str]) -> Dict[str, np.ndarray]:
        """[CLS] + the pieces of every given token, truncated to seq_length.  A token the vocabulary
        holds maps to its id (UER-py); another goes through the tokenizer, and when that splits it
        into several pieces only the first piece is labelled (``heads``), the others get IGNORE, so
        metrics and predictions stay one per given token.  A token with no pieces becomes [UNK]."""
        vocab = self.tokenizer.vocab
        src, heads = [vocab.cls_id], []
        for token in tokens:
            if token in vocab:
                pieces = [vocab.token_to_id(token)]
            else:
                pieces = self.tokenizer.encode(token) or [vocab.unk_id]
            if len(src) + 1 > self.seq_length:
                break
            heads.append(len(src))
            src += pieces[: self.seq_length - len(src)]
        return {"src": np.asarray(src, dtype=np.int64), "heads": np.asarray(heads, dtype=np.int64),
                "tokens_num": len(tokens)}

    def read(self, path: str, flag: str, with_labels: bool, labels_num: int = 0) -> List[dict]:
        required = self.columns_required + (("label",) if with_labels else ())
        rows = []
        for line, row in read_tsv(path, required, ("label",), flag=flag):
            tokens = row["text_a"].split(" ")
            tags = row["label"].split(" ") if with_labels else None
            if tags is not None and len(tags) != len(tokens):
                raise DataError(f"{flag} {path} line {line}: {len(tokens)} tokens in text_a but {len(tags)} "
                                "tags in label; every space-separated token needs exactly one tag")
            rows.append((line, tokens, tags))
        if with_labels and self.label2id is None:
            self.label2id = label2id_from_tags([t for _, _, tags in rows for t in tags])
            self.label2id_source = f"the tags of {flag} {path}"
            logger.info("label2id built from %s: %s", path, self.label2id)
        examples, truncated = [], 0
        for line, tokens, tags in rows:
            example = self.encode_tokens(tokens)
            truncated += len(example["heads"]) < len(tokens)
            if tags is not None:
                label = np.full(len(example["src"]), IGNORE, dtype=np.int64)
                for head, tag in zip(example["heads"], tags):
                    if tag not in self.label2id:
                        raise DataError(f"{flag} {path} line {line}: tag {tag!r} is not in {self.label2id_source} "
                                        f"({', '.join(self.label2id)}); add it there or fix the line")
                    label[head] = self.label2id[tag]
                example["label"] = label
            examples.append(example)
        if truncated:
            logger.warning("%s: %d of %d examples are longer than --seq_length %d and were truncated (their "
                           "tail tokens are not scored and are predicted 'O')", path, truncated, len(examples),
                           self.seq_length)
        return examples

    # ---------------------------------------------------------------- model, metrics, predictions
    def labels_num(self, train: List[dict], requested: Optional[int] = None) -> int:
        return len(self.label2id)

    def info(self) -> dict:
        """Saved in <model>.task.json so inference writes the same tag names."""
        return {"label2id": self.label2id}

    def build_model(self, config: ModelConfig) -> Tagger:
        if self.label2id is None:       # inference of a model without <model>.task.json (a converted one)
            raise ConfigError("no tag names for the model's labels: pass --label2id_path (the label2id.json "
                              "it was fine-tuned with); it is read from <load_model_path>.task.json when present")
        if config.labels_num != len(self.label2id):
            raise ConfigError(f"{self.label2id_source} has {len(self.label2id)} tags but the model has "
                              f"labels_num {config.labels_num}; use the label2id the model was fine-tuned with")
        return Tagger(config)

    def collator(self) -> TaggingCollator:
        return TaggingCollator(self.tokenizer.vocab.pad_id)

    def tags(self, ids: Sequence[int]) -> List[str]:
        id2label = {i: t for t, i in self.label2id.items()}
        return [id2label[int(i)] for i in ids]

    def metrics(self, labels: Sequence[np.ndarray], predictions: Sequence[Sequence[int]]) -> Dict[str, float]:
        """Entity-level precision/recall/F1 and token accuracy over the labelled positions."""
        gold, pred = [], []
        for label, prediction in zip(labels, predictions):
            label = np.asarray(label)
            positions = np.flatnonzero(label != IGNORE)
            gold.append(self.tags(label[positions]))
            pred.append(self.tags(np.asarray(prediction)[positions]))
        return entity_metrics(gold, pred)

    @staticmethod
    def summary(scores: Dict[str, float]) -> str:
        return (f"f1: {scores['f1']:.4f} precision: {scores['precision']:.4f} recall: {scores['recall']:.4f} "
                f"token accuracy: {scores['accuracy']:.4f}")

    def format_predictions(self, logits: np.ndarray, output_logits: bool, output_prob: bool,
                           examples: Sequence[dict] = ()) -> List[str]:
        """UER-py run_ner_infer.py's file: one line per input, a tag per given token; tokens cut off by
        --seq_length are tagged 'O'.  (--output_logits/--output_prob are classification options.)"""
        if output_logits or output_prob:
            raise ConfigError("--output_logits / --output_prob are not available for NER predictions")
        lines = []
        for row, example in zip(logits, examples):
            tags = self.tags(row.argmax(-1)[example["heads"]])
            lines.append(" ".join(tags + ["O"] * (example["tokens_num"] - len(tags))))
        return lines
