"""ChID idiom cloze (UER-py run_chid.py / run_chid_infer.py).

Input: JSON lines ``{"candidates": [idioms], "content": [passages]}``, each passage holding one or
more blanks ``#idiom000123#``; the answers are a separate JSON object ``{"#idiom000123#": index into
that line's candidates}`` (``--train_answer_path`` / ``--dev_answer_path`` / ``--test_answer_path``).
Each blank is one example over the line's candidates: ``[CLS] candidate [SEP] left context [SEP]
right context [SEP]``, the context a window of the passage centred on the blank (as much on each
side as fits; a side that runs out gives its room to the other), other blanks in it replaced by
[MASK].  Inference (UER-py's post-processing) gives each line's blanks distinct candidates, greedily
by logit, and writes ``{"#idiom000123#": index}`` as indented JSON."""

import argparse
import json
import os
import re
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import numpy as np

from uer.errors import ConfigError, DataError
from uer.registry import TASKS
from uer.tasks.base import TaskData, split_flag
from uer.tasks.multiple_choice import MultipleChoiceTask, encode_choice, read_json_file
from uer.utils import atomic_write_text
from uer.data.text_files import open_text

BLANK = re.compile(r"#idiom\d+#")
ANSWER_FORMAT = "a JSON object {\"#idiom000123#\": candidate index}"


def context_window(left: List[int], right: List[int], budget: int) -> Tuple[List[int], List[int]]:
    """The last tokens of ``left`` and the first of ``right``, ``budget`` in all: half each, the
    room one side does not use going to the other."""
    budget = max(budget, 0)
    n_left = min(len(left), budget // 2)
    n_right = min(len(right), budget - n_left)
    n_left = min(len(left), budget - n_right)
    return left[len(left) - n_left:], right[:n_right]


def assign_distinct(scores: np.ndarray, candidates_num: int) -> List[int]:
    """UER-py's ChID post-processing: blanks (rows) take candidates (columns) greedily by score, each
    candidate once; blanks left over (more blanks than candidates) take their best candidate."""
    blanks = scores.shape[0]
    order = sorted(((float(scores[b, c]), b, c) for b in range(blanks) for c in range(candidates_num)),
                   key=lambda t: -t[0])
    chosen: Dict[int, int] = {}
    used = set()
    for _, b, c in order:
        if b not in chosen and c not in used:
            chosen[b] = c
            used.add(c)
    return [chosen.get(b, int(scores[b, :candidates_num].argmax())) for b in range(blanks)]


@TASKS.register("chid")
class ChidTask(MultipleChoiceTask):
    name = "chid"
    default_max_choices = 10
    default_seq_length = 64       # UER-py's ChID runs use --seq_length 64

    def __init__(self, tokenizer, seq_length: int, max_choices_num: Optional[int] = None,
                 answer_paths: Optional[Dict[str, str]] = None):
        super().__init__(tokenizer, seq_length, max_choices_num)
        tokenizer.vocab.require(("mask",), purpose="the 'chid' task (other blanks become [MASK])")
        self.answer_paths = dict(answer_paths or {})

    @classmethod
    def add_args(cls, parser: argparse.ArgumentParser, training: bool) -> None:
        super().add_args(parser, training)
        if training:
            parser.add_argument("--train_answer_path", required=True, help="Answers of --train_path: " + ANSWER_FORMAT)
            parser.add_argument("--dev_answer_path", required=True, help="Answers of --dev_path.")
            parser.add_argument("--test_answer_path", default=None,
                                help="Answers of --test_path (needed when --test_path is given).")

    @classmethod
    def from_args(cls, tokenizer, args: argparse.Namespace, saved: dict) -> "ChidTask":
        paths = {split: getattr(args, f"{split}_answer_path", None) for split in ("train", "dev", "test")}
        if getattr(args, "train_answer_path", None) is not None and getattr(args, "test_path", None) \
                and not paths["test"]:
            raise ConfigError("--test_path is given but not --test_answer_path; ChID answers live in a separate "
                              "file: pass --test_answer_path (or drop --test_path)")
        return cls(tokenizer, args.seq_length, cls.choices_from_args(args, saved),
                   {k: v for k, v in paths.items() if v})

    # ---------------------------------------------------------------- reading
    def read_answers(self, split: str) -> Tuple[str, Dict[str, int]]:
        flag = f"--{split}_answer_path"
        path = self.answer_paths.get(split)
        if not path:
            raise ConfigError(f"the {split} file needs its answers: pass {flag}")
        answers = read_json_file(path, flag, ANSWER_FORMAT)
        if not isinstance(answers, dict):
            raise DataError(f"{flag} {path}: expected {ANSWER_FORMAT}, got a JSON {type(answers).__name__}")
        for tag, value in answers.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise DataError(f"{flag} {path}: the answer of {tag} is {json.dumps(value, ensure_ascii=False)}; "
                                "answers are candidate indices (integers)")
        return f"{flag} {path}", answers

    def read(self, path: str, split: str) -> TaskData:
        flag = split_flag(split)
        labelled = split != "infer"
        answer_where, answers = self.read_answers(split) if labelled else ("", {})
        if not os.path.isfile(path):
            raise DataError(f"{flag} {path} does not exist; pass a ChID JSON-lines file")
        vocab, encode = self.tokenizer.vocab, self.tokenizer.encode
        examples, seen = [], {}
        with open_text(path, f"{flag} {path}") as f:      # not UTF-8: line and byte named; a BOM is fine
            lines = f.read().splitlines()
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            where = f"{flag} {path} line {number}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); each line must be "
                                "{\"candidates\": [...], \"content\": [...]}") from None
            if not isinstance(obj, dict) or "candidates" not in obj or "content" not in obj:
                raise DataError(f"{where}: expected an object with \"candidates\" and \"content\"")
            candidates, content = obj["candidates"], obj["content"]
            if isinstance(content, str):
                content = [content]
            if not isinstance(candidates, list) or not candidates or \
                    not all(isinstance(c, str) and c for c in candidates):
                raise DataError(f"{where}: \"candidates\" must be a non-empty list of idioms (strings)")
            if len(candidates) > self.max_choices_num:
                raise self.too_many_choices(where, len(candidates))
            if not isinstance(content, list) or not content or not all(isinstance(p, str) for p in content):
                raise DataError(f"{where}: \"content\" must be a non-empty list of passages (strings)")
            cand_ids = [encode(c) for c in candidates]
            budget = self.seq_length - 4 - max(len(c) for c in cand_ids)
            for p, passage in enumerate(content):
                tags = BLANK.findall(passage)
                if not tags:
                    raise DataError(f"{where}: passage {p} has no blank (#idiom000123#)")
                pieces = [encode(piece) for piece in BLANK.split(passage)]
                for k, tag in enumerate(tags):
                    if tag in seen:
                        raise DataError(f"{where}: blank {tag} already occurs on line {seen[tag]}; blanks must be "
                                        "unique in a file (the answers are keyed by them)")
                    seen[tag] = number
                    left, right = self.sides(pieces, k, vocab.mask_id)
                    left, right = context_window(left, right, budget)
                    example = {"tag": tag, "line": number, "candidates_num": len(candidates),
                               "choices": [encode_choice(vocab, c, left, right, self.seq_length, segment_a_parts=1)
                                           for c in cand_ids]}
                    if labelled:
                        if tag not in answers:
                            raise DataError(f"{answer_where} has no answer for {tag} ({where}, passage {p})")
                        label = answers[tag]
                        if not 0 <= label < len(candidates):
                            raise DataError(f"{answer_where}: the answer of {tag} is {label}, but {where} has "
                                            f"{len(candidates)} candidates (0..{len(candidates) - 1})")
                        example["label"] = label
                    examples.append(example)
        if not examples:
            raise DataError(f"{flag} {path} holds no passage; expected JSON lines "
                            "{\"candidates\": [...], \"content\": [...]}")
        return TaskData(examples, path, split)

    @staticmethod
    def sides(pieces: List[List[int]], k: int, mask_id: int) -> Tuple[List[int], List[int]]:
        """Token ids left and right of blank ``k`` of a passage split at its blanks (``pieces``: one
        more than the blanks); every other blank is one [MASK]."""
        left: List[int] = []
        for piece in pieces[:k]:
            left += piece + [mask_id]
        left += pieces[k]
        right: List[int] = []
        for j, piece in enumerate(pieces[k + 1:]):
            right += ([mask_id] if j else []) + piece
        return left, right

    # ---------------------------------------------------------------- results
    def prediction(self, data: TaskData, outputs: np.ndarray) -> Dict[str, int]:
        """{blank: candidate index}, each line's blanks given distinct candidates."""
        groups = defaultdict(list)
        for i, example in enumerate(data.examples):
            groups[example["line"]].append(i)
        predicted = {}
        for line, members in groups.items():
            n = data.examples[members[0]]["candidates_num"]
            for i, choice in zip(members, assign_distinct(outputs[members], n)):
                predicted[data.examples[i]["tag"]] = int(choice)
        return predicted

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        return json.dumps(self.prediction(data, outputs), ensure_ascii=False, indent=2).splitlines()

    def write_predictions(self, data: TaskData, outputs: np.ndarray, path: str):
        predicted = self.prediction(data, outputs)
        atomic_write_text(path, json.dumps(predicted, ensure_ascii=False, indent=2) + "\n")
        return predicted
