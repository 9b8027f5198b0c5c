"""SimCSE sentence embeddings (UER-py run_simcse.py; Gao et al. 2021).

Training data, as UER-py reads it:

* unsupervised: a TSV with a ``text_a`` column, or plain text with one sentence per line — each
  sentence is encoded twice, the two dropout masks make the two views of the positive pair;
* supervised: a TSV with ``text_a`` and ``text_b`` — each row is a positive pair.

Every other pair in the batch is a negative (in-batch negatives): the loss is the cross-entropy of
cos(u_i, v_j) / ``--temperature`` with row i's positive in column i.  UER-py has no hard
negatives, nor has this task.  Dev and test files are STS-B style ``label\ttext_a\ttext_b`` with a
real-valued gold similarity; the score is Spearman's correlation between the cosine similarity of
the pooled sentence vectors and the gold (best-dev metric), with Pearson beside it.

The head has no parameters: the model is the backbone alone, so ``scripts/extract_features.py
--pooling <the fine-tuning --pooling>`` reads sentence vectors from it, as UER-py's users do."""

import argparse
import logging
import os
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from uer.config import ModelConfig
from uer.data.text_files import open_text
from uer.errors import ConfigError, DataError
from uer.registry import HEADS, TASKS
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.heads import Encode, Head
from uer.tasks.metrics import regression_metrics
from uer.tasks.siamese import PairCollator, encode_single, encode_towers, read_pairs

logger = logging.getLogger("uer")

DEFAULT_TEMPERATURE = 0.05


def cosine_matrix(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, H), (B, H) -> (B, B): cos(u_i, v_j)."""
    return F.normalize(u.float(), dim=-1) @ F.normalize(v.float(), dim=-1).t()


def contrastive_loss(u: torch.Tensor, v: torch.Tensor, temperature: float) -> Dict[str, torch.Tensor]:
    """InfoNCE with in-batch negatives: row i's positive is v_i, every v_j (j != i) a negative.
    ``simcse_acc``: how often the positive is the most similar of the batch."""
    scores = cosine_matrix(u, v) / temperature
    targets = torch.arange(scores.size(0), device=scores.device)
    loss = F.cross_entropy(scores, targets)
    return {"loss": loss, "simcse_loss": loss.detach(),
            "simcse_acc": (scores.argmax(-1) == targets).float().mean().detach()}


def pair_cosines(outputs: np.ndarray) -> np.ndarray:
    """(N, 2, H) pairs of sentence vectors -> (N,) cosine similarities."""
    u, v = outputs[:, 0].astype(np.float64), outputs[:, 1].astype(np.float64)
    norms = np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-12)
    return (u * v).sum(-1) / norms


@HEADS.register("simcse")
class SimcseHead(Head):
    """Outputs both pooled sentence vectors of every pair, stacked (B, 2, H), so the runner gathers
    one tensor per example and evaluation takes their cosine.  No parameters, no HF counterpart."""
    hf_kind = None

    def __init__(self, config: ModelConfig, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__()
        self.pooling, self.temperature = config.pooling, temperature

    def run(self, encode: Encode, batch: dict) -> torch.Tensor:
        return torch.stack(encode_towers(encode, batch, self.pooling), dim=1)

    def loss(self, outputs: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        return contrastive_loss(outputs[:, 0], outputs[:, 1], self.temperature)


def in_batch_targets(items: List[dict]) -> torch.Tensor:
    """The positive of row i is column i of the similarity matrix."""
    return torch.arange(len(items))


@TASKS.register("simcse")
class SimcseTask(Task):
    name = "simcse"
    head = "simcse"
    primary_metric = "spearman"

    def __init__(self, tokenizer, seq_length: int, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__(tokenizer, seq_length)
        if not temperature > 0:
            raise ConfigError(f"--temperature must be > 0 (it divides the cosine similarities), got {temperature}")
        self.temperature = temperature

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        # --pooling is the model-config override (default: the config's, "first").
        if training:
            parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                                help="Softmax temperature of the contrastive loss (UER-py's default 0.05).")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "SimcseTask":
        temperature = getattr(args, "temperature", None)
        if temperature is None:
            temperature = saved.get("head_options", {}).get("temperature", DEFAULT_TEMPERATURE)
        return cls(tokenizer, args.seq_length, temperature)

    def head_options(self) -> dict:
        return {"temperature": self.temperature}

    # ---------------------------------------------------------------- data
    def read(self, path: str, split: str) -> TaskData:
        if split == "train":
            return self.read_train(path)
        where = f"{split_flag(split)} {path}"
        labelled = split != "infer"
        examples = read_pairs(self.tokenizer, self.seq_length, path, split,
                              ("text_a", "text_b") + (("label",) if labelled else ()))
        for example in examples:
            row = example.pop("row")
            if labelled:
                example["label"] = parse_score(row["label"], where, example["line"])
        return TaskData(examples, path, split)

    def read_train(self, path: str) -> TaskData:
        """A TSV when the first line names a text_a column (UER-py's format), else one sentence per line."""
        where = f"--train_path {path}"
        if first_line(path, where).split("\t").count("text_a"):
            examples = read_pairs(self.tokenizer, self.seq_length, path, "train", ("text_a",), ("text_b", "label"))
            paired = "text_b" in examples[0]["row"]
            if "label" in examples[0]["row"]:
                logger.warning("%s: the label column is not used — SimCSE trains on every row as a positive "
                               "pair (as UER-py does); the dev file's labels are the gold similarities", where)
            for example in examples:
                example.pop("row")
        else:
            examples, paired = self.read_sentences(path, where), False
        return TaskData(examples, path, "train", extra={"paired": paired})

    def read_sentences(self, path: str, where: str) -> List[dict]:
        examples = []
        with open_text(path, where) as f:
            for number, line in enumerate(f, start=1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                if "\t" in text:
                    raise DataError(f"{where} line {number}: a tab in a file of plain sentences; a TSV needs a "
                                    "header line naming its columns (text_a, and text_b for positive pairs)")
                src = encode_single(self.tokenizer, text, self.seq_length)
                examples.append({"src_a": src, "src_b": src, "line": number})
        if not examples:
            raise DataError(f"{where} holds no sentences (it is empty or blank)")
        return examples

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        if not train.extra.get("paired") and config.dropout == 0:
            logger.warning("unsupervised SimCSE with dropout 0: the two views of every sentence are identical, "
                           "so the positives teach nothing; set --dropout (e.g. 0.1)")
        logger.info("SimCSE (%s, temperature %g, %s pooling): sentence vectors come out of "
                    "scripts/extract_features.py --pooling %s", "supervised pairs" if train.extra.get("paired")
                    else "unsupervised", self.temperature, config.pooling, config.pooling)

    def collator(self) -> PairCollator:
        return PairCollator(self.tokenizer.vocab.pad_id, in_batch_targets)

    # ---------------------------------------------------------------- results
    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        scores = regression_metrics([e["label"] for e in data.examples], pair_cosines(outputs))
        del scores["mse"]          # cosines and gold scores (0..5) are on different scales
        return scores

    def summary(self, scores: Dict[str, float]) -> str:
        return f"spearman: {scores['spearman']:.4f} pearson: {scores['pearson']:.4f}"

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        """A header, then the cosine similarity of text_a and text_b per line."""
        return ["similarity"] + [f"{s:.6f}" for s in pair_cosines(outputs)]


def first_line(path: str, where: str) -> str:
    if not os.path.isfile(path):
        raise DataError(f"{where} does not exist")
    with open_text(path, where) as f:
        return f.readline().rstrip("\r\n")


def parse_score(value: str, where: str, line: int) -> float:
    try:
        score = float(value)
    except ValueError:
        raise DataError(f"{where} line {line}: label {value!r} is not a number (the gold similarity of the "
                        "pair, e.g. 3.8 in STS-B)") from None
    if not np.isfinite(score):
        raise DataError(f"{where} line {line}: label {value!r} is not a finite number")
    return score
