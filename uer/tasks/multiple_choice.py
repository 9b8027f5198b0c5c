"""What the multiple-choice task families share (UER-py's ``MultipleChoice`` model of run_c3.py and
run_chid.py): every (context, choice) pair is one sequence, a head gives each sequence one logit and
a softmax over an example's choices is trained by cross-entropy; accuracy is the metric.

* Encoding: ``[CLS] first [SEP] second [SEP] third [SEP]`` (C3: choice, question, document; ChID:
  candidate, left context, right context), truncating ``third`` first, then ``second``, then ``first``.
* Batches: ``src``/``seg`` hold only the *real* choices, row after row, (N, L); ``choice_mask``
  (B, C) says which of each example's ``C = --max_choices_num`` slots they fill.  A padded slot is
  never encoded and its logit is ``MASKED``, so it takes no probability (UER-py scores C3's padding
  slots as real "No Answer" choices and ChID's as all-padding sequences).
* Outputs: (examples, C) logits, what the runner gathers, evaluates and hands to the predictions.
"""

import argparse
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.registry import HEADS
from uer.tasks.base import Task, TaskData
from uer.tasks.heads import Encode, Head
from uer.data.text_files import open_text

MASKED = -1e4          # the logit of a padded choice slot (finite: fp16-safe, softmax weight 0)
MIN_SEQ_LENGTH = 8


# ------------------------------------------------------------------------------------------------
# Reading and encoding
# ------------------------------------------------------------------------------------------------

def read_json_file(path: str, flag: str, what: str):
    """The parsed JSON of ``path``; errors name the flag, the file and the line/column."""
    if not path or not os.path.isfile(path):
        raise DataError(f"{flag} {path} does not exist; pass {what}")
    try:
        with open_text(path, f"{flag} {path}") as f:      # not UTF-8: line and byte named; a BOM is fine
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{flag} {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno} "
                        f"(expected {what})") from None


def encode_choice(vocab, first: Sequence[int], second: Sequence[int], third: Sequence[int], seq_length: int,
                  segment_a_parts: int = 2) -> Dict[str, object]:
    """``[CLS] first [SEP] second [SEP] third [SEP]`` within ``seq_length`` tokens: ``third`` is cut
    first, then ``second``, then ``first``.  ``segment_a_parts``: how many of the parts are segment A
    (seg 1); the rest is segment B (seg 2)."""
    first, second, third = list(first), list(second), list(third)
    excess = len(first) + len(second) + len(third) + 4 - seq_length
    for part in (third, second, first):
        cut = min(max(excess, 0), len(part))
        if cut:
            del part[len(part) - cut:]
            excess -= cut
    cls, sep = vocab.cls_id, vocab.sep_id
    head = [cls] + first + [sep]
    if segment_a_parts >= 2:
        head += second + [sep]
        src = head + third + [sep]
    else:
        src = head + second + [sep] + third + [sep]
    return {"src": np.asarray(src, dtype=np.int64), "seg_a_len": len(head)}


def check_seq_length(seq_length: int) -> None:
    if seq_length < MIN_SEQ_LENGTH:
        raise ConfigError(f"--seq_length {seq_length} is too short for a multiple-choice sequence "
                          f"([CLS] choice [SEP] ... [SEP] ... [SEP]); use at least {MIN_SEQ_LENGTH}")


# ------------------------------------------------------------------------------------------------
# Collating
# ------------------------------------------------------------------------------------------------

class MultipleChoiceCollator:
    """Examples ``{"choices": [{"src", "seg_a_len"} ...], "label"?}`` -> ``src``/``seg`` (N, L) of the
    N real choices in order, ``choice_mask`` (B, C) bool, ``labels`` (B,) when labelled, ``tokens``."""

    def __init__(self, pad_id: int, choices_num: int, pad_multiple: int = 8):
        self.pad_id, self.choices_num, self.pad_multiple = pad_id, choices_num, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        rows = [choice for item in items for choice in item["choices"]]
        if any(len(item["choices"]) > self.choices_num for item in items):
            raise DataError(f"an example has more than --max_choices_num {self.choices_num} choices")
        longest = max(len(r["src"]) for r in rows)
        length = -(-longest // self.pad_multiple) * self.pad_multiple
        src = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        seg = np.zeros((len(rows), length), dtype=np.int64)
        for i, row in enumerate(rows):
            n, a = len(row["src"]), row["seg_a_len"]
            src[i, :n] = row["src"]
            seg[i, :a] = 1
            seg[i, a:n] = 2
        mask = np.zeros((len(items), self.choices_num), dtype=bool)
        for b, item in enumerate(items):
            mask[b, :len(item["choices"])] = True
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg), "choice_mask": torch.from_numpy(mask),
               "tokens": torch.tensor(int((seg > 0).sum()))}
        if "label" in items[0]:
            out["labels"] = torch.tensor([item["label"] for item in items], dtype=torch.long)
        return out


# ------------------------------------------------------------------------------------------------
# The head
# ------------------------------------------------------------------------------------------------

@HEADS.register("choice_scorer")
class ChoiceScorerHead(Head):
    """dropout -> linear(hidden, 1) on the first token of every (context, choice) sequence (UER-py's
    ``MultipleChoice.output_layer``); the logits of an example's choices are softmaxed together.
    Hugging Face's BertForMultipleChoice puts BERT's pooler (dense + tanh) before its linear layer and
    UER-py's head has none, so this head does not convert (``hf_kind`` None)."""
    hf_kind = None

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, 1)

    def run(self, encode: Encode, batch: dict) -> torch.Tensor:
        return self(encode(batch["src"], batch["seg"]), batch)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        """hidden (N, L, H) of the real choices -> logits (B, C), ``MASKED`` on padded slots."""
        scores = self.output(self.dropout(hidden[:, 0])).squeeze(-1)
        mask = batch["choice_mask"]
        logits = torch.full(mask.shape, MASKED, dtype=scores.dtype, device=scores.device)
        return logits.masked_scatter(mask, scores)

    def loss(self, logits: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        labels = batch["labels"]
        loss = F.cross_entropy(logits.float(), labels)
        acc = logits.argmax(-1).eq(labels).float().mean()
        return {"loss": loss, "choice_loss": loss.detach(), "choice_acc": acc.detach()}


# ------------------------------------------------------------------------------------------------
# The task family
# ------------------------------------------------------------------------------------------------

def choice_accuracy(labels: Sequence[int], outputs: np.ndarray) -> Dict[str, float]:
    """Accuracy of the argmax choice; ``examples``: how many were scored."""
    gold = np.asarray(labels, dtype=np.int64)
    if gold.size == 0:
        return {"accuracy": 0.0, "examples": 0}
    predicted = np.asarray(outputs).argmax(-1)
    return {"accuracy": float((predicted == gold).mean()), "examples": int(gold.size)}


class MultipleChoiceTask(Task):
    """A task whose examples are ``{"choices": [...], "label"?, ...}``; subclasses read their format
    and write their prediction file."""

    head = "choice_scorer"
    primary_metric = "accuracy"
    default_max_choices = 4

    def __init__(self, tokenizer, seq_length: int, max_choices_num: Optional[int] = None):
        super().__init__(tokenizer, seq_length)
        check_seq_length(seq_length)
        self.max_choices_num = max_choices_num or self.default_max_choices
        if self.max_choices_num < 2:
            raise ConfigError(f"--max_choices_num must be at least 2, got {self.max_choices_num}")
        tokenizer.vocab.require(("cls", "sep", "pad"), purpose=f"the '{self.name}' task")

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        parser.add_argument("--max_choices_num", type=int, default=None,
                            help=f"Choices per question; fewer are padded (masked out). Default "
                                 f"{cls.default_max_choices} (UER-py's) when fine-tuning, the model's for inference.")

    @classmethod
    def choices_from_args(cls, args: argparse.Namespace, saved: dict) -> int:
        return args.max_choices_num or saved.get("max_choices_num") or cls.default_max_choices

    def info(self) -> dict:
        return {"max_choices_num": self.max_choices_num}

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        config.labels_num = self.max_choices_num        # UER-py: args.labels_num = args.max_choices_num

    def collator(self) -> MultipleChoiceCollator:
        return MultipleChoiceCollator(self.tokenizer.vocab.pad_id, self.max_choices_num)

    def too_many_choices(self, where: str, n: int) -> DataError:
        return DataError(f"{where} has {n} choices, more than --max_choices_num {self.max_choices_num}; "
                         f"raise --max_choices_num to at least {n}")

    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        return choice_accuracy([e["label"] for e in data.examples], outputs)

    def summary(self, scores: Dict[str, float]) -> str:
        return f"accuracy: {scores['accuracy']:.4f} ({scores['examples']} examples)"
