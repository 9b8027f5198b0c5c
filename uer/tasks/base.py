"""The contract of a fine-tuning task: everything that differs between downstream task families.

The fine-tuning and inference procedures (``uer.tasks.runner``) are written once and talk to a
task only through these hooks, in the spirit of fairseq's ``FairseqTask``.  A new task family is
one file: a ``Task`` subclass registered in ``TASKS`` (plus a head in ``HEADS`` if none fits), and
a two-line script shim — nothing else to edit.

Life of a task::

    cls.add_args(parser, training)           # its own flags, in the fine-tune / inference parsers
    task = cls.from_args(tokenizer, args, saved)   # saved: the .task.json beside a model ({} when
                                             # fine-tuning), so inference reads what training used
    train = task.read(path, "train")         # -> TaskData; errors name the file and line
    task.prepare(train, config)              # fine-tuning: fix what the train data decides
                                             # (labels_num, ...) in the model config
    task.check_data(dev, config)             # ... and that dev/test agree with it
    task.check_model(config)                 # inference: the saved model fits the task
    model = task.build_model(config)         # backbone + head (build_task_model: LoRA hooks in)
    batch = task.collator()(examples, indices, epoch)   # tensors; "labels" present when labelled
    outputs = model(batch)["logits"]         # gathered over the whole split by the runner
    task.evaluate(dev, outputs)[task.primary_metric]    # best-dev selection
    task.write_predictions(test, outputs, path)         # inference's output file
    task.info()                              # saved in <model>.task.json
"""

import argparse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from uer.config import ModelConfig
from uer.utils import atomic_write_text

SPLITS = ("train", "dev", "test", "infer")     # "infer": unlabelled input of an inference script


def split_flag(split: str) -> str:
    """The flag a split's file came from, for error messages."""
    return "--test_path" if split == "infer" else f"--{split}_path"


@dataclass
class TaskData:
    """What ``read`` returns: ``examples`` are what the collator and the sampler see (one per model
    input: a window, a sentence pair ...); tasks add what evaluation or prediction needs."""
    examples: List[dict]
    path: str = ""
    split: str = "train"
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self):
        return iter(self.examples)

    def __getitem__(self, i):
        return self.examples[i]

    @property
    def labelled(self) -> bool:
        return self.split != "infer"


class Task:
    name: str = ""                  # its TASKS name (also the "task" key of <model>.task.json)
    head: str = "classifier"        # the HEADS entry its model uses
    primary_metric: str = ""        # a key of evaluate()'s result; the best dev model is kept by it
    default_seq_length: int = 128   # --seq_length default (capped at the model's max_seq_length)

    def __init__(self, tokenizer, seq_length: int):
        self.tokenizer, self.seq_length = tokenizer, seq_length

    # ---------------------------------------------------------------- flags and construction
    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        """The task's own flags (``training``: the fine-tuning parser, else the inference one)."""

    @classmethod
    def from_args(cls, tokenizer, args: argparse.Namespace, saved: dict) -> "Task":
        return cls(tokenizer, args.seq_length)

    def info(self) -> dict:
        """Settings inference must reuse (label maps, thresholds ...); saved in <model>.task.json."""
        return {}

    # ---------------------------------------------------------------- data
    def read(self, path: str, split: str) -> TaskData:
        raise NotImplementedError

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        """Fine-tuning, after the train file is read: set what it decides (``config.labels_num``)."""

    def check_data(self, data: TaskData, config: ModelConfig) -> None:
        """Fine-tuning, after ``prepare``: dev/test examples fit what the train data decided (a label
        outside ``labels_num`` ...); errors name the file and line."""

    def check_model(self, config: ModelConfig) -> None:
        """Inference: raise ConfigError when the saved model cannot serve this task's settings."""

    def collator(self) -> Callable:
        raise NotImplementedError

    def prediction_lengths(self, data: TaskData) -> Optional[List[int]]:
        """Each example's token count, when prediction may batch the examples by length (longest
        first: less padding) because an example's outputs do not depend on its batch's other rows;
        None (the default) keeps the file's order in every batch."""
        return None

    # ---------------------------------------------------------------- model
    def head_options(self) -> dict:
        """Keyword arguments of the head (saved, so inference and conversion rebuild it)."""
        return {}

    def loss(self) -> Optional[Callable]:
        """A loss replacing the head's own (e.g. distillation), or None."""
        return None

    def build_model(self, config: ModelConfig):
        from uer.tasks.heads import build_task_model
        return build_task_model(config, self.head, self.head_options(), self.loss())

    # ---------------------------------------------------------------- results
    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        raise NotImplementedError

    def summary(self, scores: Dict[str, float]) -> str:
        return " ".join(f"{k}: {v:.4f}" for k, v in scores.items() if isinstance(v, float))

    def log_details(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """Extra lines for the log after an evaluation (confusion matrix ...)."""
        return []

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        raise NotImplementedError

    def write_predictions(self, data: TaskData, outputs: np.ndarray, path: str):
        """Write the prediction file; returns what was written (lines, or the task's object)."""
        lines = self.prediction_lines(data, outputs)
        atomic_write_text(path, "\n".join(lines) + "\n")
        return lines
