"""Sequence labelling (NER) in UER-py's format: a TSV with a header, ``text_a`` holding space-separated
tokens (characters for Chinese) and ``label`` the same number of space-separated BIO tags."""

import json
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.registry import TASKS
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.heads import IGNORE, build_task_model
from uer.tasks.metrics import entity_metrics
from uer.tasks.tsv import read_tsv
from uer.data.text_files import open_text

logger = logging.getLogger("uer")

def Tagger(config: ModelConfig):
    """The sequence-labelling task model: backbone + the per-token "tagger" head."""
    return build_task_model(config, "tagger")


def read_label2id(path: str) -> Dict[str, int]:
    """A JSON object tag -> id with ids 0..n-1 (UER-py's label2id.json)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--label2id_path {path} does not exist")
    try:
        with open_text(path, f"--label2id_path {path}") as f:
            label2id = json.loads(f.read())
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
        if "heads" in items[0]:      # the words' first pieces: the positions a CRF decodes over
            words = np.zeros((len(items), length), dtype=bool)
            for i, item in enumerate(items):
                words[i, item["heads"]] = True
            out["word_mask"] = torch.from_numpy(words)
        return out


@TASKS.register("ner")
class TaggingTask(Task):
    """Reader + model + metric + prediction writer for sequence labelling (UER-py run_ner.py)."""

    name = "ner"
    head = "tagger"
    columns_required = ("text_a",)
    primary_metric = "f1"

    @classmethod
    def add_args(cls, parser, training: bool) -> None:
        parser.add_argument("--label2id_path", default=None, help=(
            'JSON {"O": 0, "B-LOC": 1, ...}; default: built from the train tags ("O" first, then sorted) and '
            "saved in <output_model_path>.task.json." if training else
            "Default: the label2id saved in <load_model_path>.task.json by fine-tuning; needed for a model "
            "converted from Hugging Face."))
        if training:
            parser.add_argument("--crf_target", action="store_true",
                                help="UER-py flag: a CRF over the tags (trained by its likelihood, decoded by "
                                     "Viterbi); inference reads it from <load_model_path>.task.json.")

    def __init__(self, tokenizer, seq_length: int, label2id: Optional[Dict[str, int]] = None,
                 label2id_source: str = ""):
        self.tokenizer, self.seq_length = tokenizer, seq_length
        self.label2id = label2id
        self.label2id_source = label2id_source      # named in unknown-tag errors

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "TaggingTask":
        task = cls._from_args(tokenizer, args, saved)
        if getattr(args, "crf_target", False) or saved.get("head") == "crf_tagger":
            task.head = "crf_tagger"
        return task

    @classmethod
    def _from_args(cls, tokenizer, args, saved: dict) -> "TaggingTask":
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

    def read(self, path: str, split: str) -> TaskData:
        flag, with_labels = split_flag(split), split != "infer"
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
        return TaskData(examples, path, split)

    # ---------------------------------------------------------------- model, metrics, predictions
    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        config.labels_num = len(self.label2id)

    def info(self) -> dict:
        """Saved in <model>.task.json so inference writes the same tag names."""
        return {"label2id": self.label2id}

    def check_model(self, config: ModelConfig) -> None:
        if self.label2id is None:       # inference of a model without <model>.task.json (a converted one)
            raise ConfigError("no tag names for the model's labels: pass --label2id_path (the label2id.json "
                              "it was fine-tuned with); it is read from <load_model_path>.task.json when present")
        if config.labels_num != len(self.label2id):
            raise ConfigError(f"{self.label2id_source} has {len(self.label2id)} tags but the model has "
                              f"labels_num {config.labels_num}; use the label2id the model was fine-tuned with")

    def collator(self) -> TaggingCollator:
        return TaggingCollator(self.tokenizer.vocab.pad_id)

    def tags(self, ids: Sequence[int]) -> List[str]:
        id2label = {i: t for t, i in self.label2id.items()}
        return [id2label[int(i)] for i in ids]

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        """Entity-level precision/recall/F1 and token accuracy over the labelled positions."""
        gold, pred = [], []
        for example, row in zip(data.examples, outputs):
            label = np.asarray(example["label"])
            positions = np.flatnonzero(label != IGNORE)
            gold.append(self.tags(label[positions]))
            pred.append(self.tags(row.argmax(-1)[positions]))
        return entity_metrics(gold, pred)

    @staticmethod
    def summary(scores: Dict[str, float]) -> str:
        return (f"f1: {scores['f1']:.4f} precision: {scores['precision']:.4f} recall: {scores['recall']:.4f} "
                f"token accuracy: {scores['accuracy']:.4f}")

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """UER-py run_ner_infer.py's file: one line per input, a tag per given token; tokens cut off by
        --seq_length are tagged 'O'."""
        lines = []
        for row, example in zip(outputs, data.examples):
            tags = self.tags(row.argmax(-1)[example["heads"]])
            lines.append(" ".join(tags + ["O"] * (example["tokens_num"] - len(tags))))
        return lines
