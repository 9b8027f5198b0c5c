"""Cloze-style (prompt) classification, UER-py's run_classifier_prompt.py: every example is put
into a template with a [MASK] slot, and each class is scored by the pretrained MLM head's
prediction of its label word(s) there — so a model classifies zero-shot and learns from few examples.

Prompts come from UER-py's JSON file (``--prompt_path models/prompts.json --prompt_id <id>``)::

    {"chnsenticorp_char": {"template": "[TEXT_A],我[ANS]满意", "answer_words": {"0": "不", "1": "很"}}}

``[TEXT_A]`` / ``[TEXT_B]`` are the TSV's text columns, ``[ANS]`` the answer slot, the rest literal
text.  An answer word is one vocabulary entry (as in UER-py) or, when it is not one, the pieces the
tokenizer splits it into; ``[ANS]`` becomes as many [MASK]s as the longest answer word has pieces.
A label may also list several words (``"1": ["很", "真"]``): the class takes the probability of any of them.
"""

import argparse
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from uer.config import ModelConfig
from uer.errors import ConfigError, DataError
from uer.registry import HEADS, TASKS
from uer.targets.mlm import MlmTarget
from uer.targets.metrics import accuracy
from uer.tasks.base import Task, TaskData, split_flag
from uer.tasks.classification import pad_examples
from uer.tasks.heads import Head
from uer.tasks.metrics import classification_metrics, confusion_matrix, format_confusion, per_class_report
from uer.tasks.tsv import read_tsv

SLOTS = ("[TEXT_A]", "[TEXT_B]", "[ANS]")
DEFAULT_PROMPT_PATH = "models/prompts.json"
DEFAULT_PROMPT_ID = "chnsenticorp_char"


# ------------------------------------------------------------------------------------------------
# The prompt: template pieces and the verbalizer (label -> answer word pieces)
# ------------------------------------------------------------------------------------------------

@dataclass
class Prompt:
    template: str                          # as written in the prompt file (saved for inference)
    answer_words: Dict[str, List[str]]     # label -> its answer words
    pieces: list                           # "[TEXT_A]" | "[TEXT_B]" | "[ANS]" | token ids of literal text
    labels: List[str]                      # the classes, in output order
    word_tokens: List[List[List[int]]]     # class -> word -> token ids (what the head scores)
    where: str = ""                        # "<file>, prompt '<id>'" for error messages

    @property
    def answer_length(self) -> int:
        """[MASK] tokens standing for [ANS]: the longest answer word's piece count."""
        return max(len(tokens) for words in self.word_tokens for tokens in words)

    @property
    def literal_length(self) -> int:
        return sum(len(p) for p in self.pieces if not isinstance(p, str))

    @property
    def pair(self) -> bool:
        return "[TEXT_B]" in self.pieces


def read_prompt_file(path: str, prompt_id: str) -> dict:
    """The entry ``prompt_id`` of a UER-py prompt JSON file."""
    if not os.path.isfile(path):
        raise ConfigError(f"--prompt_path {path} does not exist; it is a JSON file of prompts such as "
                          "{\"my_prompt\": {\"template\": \"[TEXT_A] It was [ANS].\", \"answer_words\": "
                          "{\"0\": \"bad\", \"1\": \"good\"}}} (UER-py's models/prompts.json)")
    try:
        with open(path, encoding="utf-8") as f:
            prompts = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--prompt_path {path} is not readable JSON ({e})") from None
    if not isinstance(prompts, dict):
        raise ConfigError(f"--prompt_path {path} must hold a JSON object of prompts keyed by --prompt_id")
    if prompt_id not in prompts:
        raise ConfigError(f"--prompt_path {path} has no prompt '{prompt_id}'; --prompt_id must be one of: "
                          f"{', '.join(sorted(prompts)) or '(none: the file is empty)'}")
    entry = prompts[prompt_id]
    if not isinstance(entry, dict) or not isinstance(entry.get("template"), str) or \
            not isinstance(entry.get("answer_words"), dict):
        raise ConfigError(f"--prompt_path {path}, prompt '{prompt_id}': needs a \"template\" string and an "
                          "\"answer_words\" object mapping each label to its word(s)")
    return entry


def build_prompt(tokenizer, template: str, answer_words: dict, where: str) -> Prompt:
    """Tokenize the template's literal text and the answer words; every mistake is a ConfigError
    naming the prompt (``where``) and the key."""
    parts = [p for p in re.split(r"(\[TEXT_A\]|\[TEXT_B\]|\[ANS\])", template) if p]
    for slot in SLOTS:
        count = parts.count(slot)
        if count > 1 or (slot != "[TEXT_B]" and count == 0):
            raise ConfigError(f"{where}, key 'template': {template!r} must hold [TEXT_A] and [ANS] exactly once "
                              f"(and [TEXT_B] at most once), found {slot} {count} time(s)")
    pieces = [p if p in SLOTS else tokenizer.encode(p) for p in parts]
    if not answer_words:
        raise ConfigError(f"{where}, key 'answer_words': empty; map every label to its word, e.g. "
                          "{\"0\": \"bad\", \"1\": \"good\"}")
    words: Dict[str, List[str]] = {}
    for label, value in answer_words.items():
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not listed or not all(isinstance(w, str) and w for w in listed):
            raise ConfigError(f"{where}, key 'answer_words', label '{label}': expected a word or a non-empty list "
                              f"of words, got {value!r}")
        words[str(label)] = listed
    labels = sorted(words, key=int) if all(re.fullmatch(r"-?\d+", k) for k in words) else list(words)
    vocab = tokenizer.vocab
    word_tokens = []
    for label in labels:
        tokens_of_label = []
        for word in words[label]:
            tokens = [vocab.token_to_id(word)] if word in vocab else tokenizer.encode(word)
            if not tokens or vocab.unk_id in tokens:
                raise ConfigError(f"{where}, key 'answer_words', label '{label}': the word {word!r} is not in the "
                                  f"vocabulary (tokenized: {tokenizer.tokenize(word)}); choose a word the "
                                  "vocabulary holds")
            tokens_of_label.append(tokens)
        word_tokens.append(tokens_of_label)
    seen = {}
    for label, tokens_of_label in zip(labels, word_tokens):
        for tokens in tokens_of_label:
            if tuple(tokens) in seen and seen[tuple(tokens)] != label:
                raise ConfigError(f"{where}, key 'answer_words': labels '{seen[tuple(tokens)]}' and '{label}' share "
                                  "an answer word, so they could never be told apart")
            seen[tuple(tokens)] = label
    return Prompt(template, words, pieces, labels, word_tokens, where)


def encode_prompt(prompt: Prompt, tokenizer, text_a: str, text_b: Optional[str], seq_length: int) -> dict:
    """[CLS] template-with-texts [SEP], the texts truncated (the longer first) so the answer slot always
    fits; [TEXT_A] of a pair is followed by [SEP], as in UER-py.  Every real token has segment 1."""
    vocab = tokenizer.vocab
    a = tokenizer.encode(text_a)
    b = tokenizer.encode(text_b) if prompt.pair else []
    budget = seq_length - prompt.literal_length - prompt.answer_length - 2 - (1 if prompt.pair else 0)
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()
    src, positions = [vocab.cls_id], []
    for piece in prompt.pieces:
        if piece == "[TEXT_A]":
            src += a + ([vocab.sep_id] if prompt.pair else [])
        elif piece == "[TEXT_B]":
            src += b
        elif piece == "[ANS]":
            positions = list(range(len(src), len(src) + prompt.answer_length))
            src += [vocab.mask_id] * prompt.answer_length
        else:
            src += piece
    src.append(vocab.sep_id)
    return {"src": np.asarray(src, dtype=np.int64), "seg_a_len": len(src),
            "mask_positions": np.asarray(positions, dtype=np.int64)}


class PromptCollator:
    """Pads the encoded examples; ``mask_positions`` (B, answer_length) are where the head reads."""

    def __init__(self, pad_id: int, pad_multiple: int = 8):
        self.pad_id, self.pad_multiple = pad_id, pad_multiple

    def __call__(self, items: List[dict], indices=None, epoch: int = 0) -> Dict[str, torch.Tensor]:
        src, seg = pad_examples(items, self.pad_id, self.pad_multiple)
        out = {"src": torch.from_numpy(src), "seg": torch.from_numpy(seg),
               "mask_positions": torch.from_numpy(np.stack([item["mask_positions"] for item in items])),
               "tokens": torch.tensor(int((seg > 0).sum()))}
        if "label" in items[0]:
            out["labels"] = torch.tensor([item["label"] for item in items], dtype=torch.long)
        return out


# ------------------------------------------------------------------------------------------------
# The head: the pretraining MLM head, read at the answer slot for the label words only
# ------------------------------------------------------------------------------------------------

@HEADS.register("cloze")
class ClozeHead(MlmTarget, Head):
    """The MLM target's layers (so ``target.mlm.*`` of a pretraining checkpoint load into ``head.*``)
    whose log-probabilities at the [MASK] positions score the classes: a word scores the mean
    log-probability of its pieces (piece i at mask i), a class the log of its words' summed
    probability.  Outputs (B, classes); trained by cross-entropy over the classes."""
    pretrained_prefix = "target.mlm."
    hf_kind = None       # Hugging Face has no cloze-classification class

    def __init__(self, config: ModelConfig, word_tokens: List[List[List[int]]]):
        super().__init__(config, embedding=None)       # a tied output table is bound by bind_backbone
        words = [(c, tokens) for c, class_words in enumerate(word_tokens) for tokens in class_words]
        length = max(len(tokens) for _, tokens in words)
        ids = torch.zeros(len(words), length, dtype=torch.long)
        weights = torch.zeros(len(words), length)
        member = torch.full((len(word_tokens), len(words)), -math.inf)
        for w, (c, tokens) in enumerate(words):
            ids[w, :len(tokens)] = torch.tensor(tokens)
            weights[w, :len(tokens)] = 1.0 / len(tokens)
            member[c, w] = 0.0
        # Not persistent: the checkpoint keeps the MLM head's names and shapes; the words are head options.
        self.register_buffer("word_ids", ids, persistent=False)            # (W, K)
        self.register_buffer("word_weights", weights, persistent=False)    # (W, K)
        self.register_buffer("membership", member, persistent=False)       # (C, W): 0 or -inf

    def bind_backbone(self, embedding, encoder) -> None:
        """Tie the output table to the backbone's word embedding (as the pretraining model does)."""
        if self.tied:
            self._embedding = [embedding]
        self.bind_encoder(encoder)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        if self.tied and self._embedding[0] is None:
            raise RuntimeError("ClozeHead with tied weights used before bind_backbone(); build it with "
                               "PromptTask.build_model")
        logp = F.log_softmax(self.logits(hidden, batch["mask_positions"]).float(), dim=-1)   # (B, K, V)
        K = self.word_ids.size(1)
        index = self.word_ids.t().unsqueeze(0).expand(logp.size(0), -1, -1)              # (B, K, W)
        word_scores = (logp[:, :K].gather(2, index) * self.word_weights.t()).sum(1)      # (B, W)
        return (word_scores.unsqueeze(1) + self.membership).logsumexp(-1)                # (B, C)

    def loss(self, scores: torch.Tensor, batch: dict) -> Dict[str, torch.Tensor]:
        loss = F.cross_entropy(scores, batch["labels"])
        return {"loss": loss, "cls_loss": loss.detach(), "cls_acc": accuracy(scores, batch["labels"])}


# ------------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------------

@TASKS.register("classifier_prompt")
class PromptTask(Task):
    """``label\ttext_a[\ttext_b]`` TSV files (labels are the prompt's answer_words keys); accuracy;
    UER-py's prediction file (label [\tlogits] [\tprob]) with the label itself in the first column."""
    name = "classifier_prompt"
    head = "cloze"
    primary_metric = "accuracy"

    def __init__(self, tokenizer, seq_length: int, prompt: Prompt, prompt_id: str = "",
                 output_logits: bool = False, output_prob: bool = False):
        super().__init__(tokenizer, seq_length)
        self.prompt, self.prompt_id = prompt, prompt_id
        self.output_logits, self.output_prob = output_logits, output_prob
        tokenizer.vocab.require(("cls", "sep", "pad", "mask"), purpose="prompt classification")
        room = seq_length - prompt.literal_length - prompt.answer_length - 2 - (1 if prompt.pair else 0)
        if room < 1:
            raise ConfigError(f"--seq_length {seq_length} leaves no room for the text: {prompt.where}'s template "
                              f"takes {seq_length - room} tokens; raise --seq_length or shorten the template")

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        later = "" if training else " Default: the prompt the model was fine-tuned with (saved beside it)."
        parser.add_argument("--prompt_id", default=DEFAULT_PROMPT_ID if training else None,
                            help="The prompt of --prompt_path to use." + later)
        parser.add_argument("--prompt_path", default=DEFAULT_PROMPT_PATH if training else None,
                            help="UER-py's prompt JSON: {id: {\"template\": \"[TEXT_A] ... [ANS] ...\", "
                                 "\"answer_words\": {label: word}}}." + later)
        if not training:
            parser.add_argument("--output_logits", action="store_true")
            parser.add_argument("--output_prob", action="store_true")

    @classmethod
    def from_args(cls, tokenizer, args, saved: dict) -> "PromptTask":
        outputs = getattr(args, "output_logits", False), getattr(args, "output_prob", False)
        if saved and args.prompt_path is None and args.prompt_id is None:
            where = f"the prompt saved with the model ('{saved.get('prompt_id', '')}')"
            prompt = build_prompt(tokenizer, saved["prompt_template"], saved["answer_words"], where)
            return cls(tokenizer, args.seq_length, prompt, saved.get("prompt_id", ""), *outputs)
        path, prompt_id = args.prompt_path or DEFAULT_PROMPT_PATH, args.prompt_id or DEFAULT_PROMPT_ID
        entry = read_prompt_file(path, prompt_id)
        prompt = build_prompt(tokenizer, entry["template"], entry["answer_words"], f"{path}, prompt '{prompt_id}'")
        if saved and prompt.labels != saved.get("labels", prompt.labels):
            raise ConfigError(f"{path}, prompt '{prompt_id}': labels {prompt.labels} but the model was fine-tuned "
                              f"for {saved['labels']}; use a prompt with those labels, or omit --prompt_path/"
                              "--prompt_id to use the saved one")
        return cls(tokenizer, args.seq_length, prompt, prompt_id, *outputs)

    def info(self) -> dict:
        return {"prompt_id": self.prompt_id, "prompt_template": self.prompt.template,
                "answer_words": self.prompt.answer_words, "labels": self.prompt.labels}

    def head_options(self) -> dict:
        return {"word_tokens": self.prompt.word_tokens}

    def build_model(self, config: ModelConfig):
        model = super().build_model(config)
        model.head.bind_backbone(model.embedding, model.encoder)
        return model

    # ---------------------------------------------------------------- data
    def read(self, path: str, split: str) -> TaskData:
        labelled = split != "infer"
        required = ("text_a",) + (("text_b",) if self.prompt.pair else ()) + (("label",) if labelled else ())
        optional = (() if self.prompt.pair else ("text_b",)) + (() if labelled else ("label",))
        class_of = {label: i for i, label in enumerate(self.prompt.labels)}
        examples = []
        for line, row in read_tsv(path, required, optional, flag=split_flag(split)):
            if not self.prompt.pair and "text_b" in row:
                raise DataError(f"{split_flag(split)} {path} line 1: the file has a text_b column but "
                                f"{self.prompt.where}'s template has no [TEXT_B]; add [TEXT_B] to the template "
                                "or drop the column")
            example = encode_prompt(self.prompt, self.tokenizer, row["text_a"], row.get("text_b"), self.seq_length)
            example["line"] = line
            if labelled:
                if row["label"] not in class_of:
                    raise DataError(f"{split_flag(split)} {path} line {line}: label {row['label']!r} has no answer "
                                    f"word in {self.prompt.where} (labels: {', '.join(self.prompt.labels)}); fix "
                                    "the label or add it to the prompt's answer_words")
                example["label"] = class_of[row["label"]]
            examples.append(example)
        return TaskData(examples, path, split)

    def prepare(self, train: TaskData, config: ModelConfig) -> None:
        config.labels_num = len(self.prompt.labels)

    def collator(self) -> PromptCollator:
        return PromptCollator(self.tokenizer.vocab.pad_id)

    # ---------------------------------------------------------------- results
    def evaluate(self, data: TaskData, outputs: np.ndarray) -> Dict[str, float]:
        return classification_metrics([e["label"] for e in data.examples], outputs.argmax(-1).tolist())

    def summary(self, scores: Dict[str, float]) -> str:
        return f"accuracy: {scores['accuracy']:.4f} macro-F1: {scores['macro_f1']:.4f}"

    def log_details(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        gold, predicted = [e["label"] for e in data.examples], outputs.argmax(-1).tolist()
        n = len(self.prompt.labels)
        lines = format_confusion(confusion_matrix(gold, predicted, n), per_class_report(gold, predicted, n))
        return [f"classes: {', '.join(f'{i}={label}' for i, label in enumerate(self.prompt.labels))}"] + \
            lines.splitlines()

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        header = ["label"] + (["logits"] if self.output_logits else []) + (["prob"] if self.output_prob else [])
        probs = torch.softmax(torch.from_numpy(outputs).float(), dim=-1).numpy()
        lines = ["\t".join(header)]
        for row, prob in zip(outputs, probs):
            fields = [self.prompt.labels[int(row.argmax())]]
            if self.output_logits:
                fields.append(" ".join(f"{v:.6f}" for v in row))
            if self.output_prob:
                fields.append(" ".join(f"{v:.6f}" for v in prob))
            lines.append("\t".join(fields))
        return lines
