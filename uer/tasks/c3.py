"""C3 multiple-choice reading comprehension (UER-py run_c3.py / run_c3_infer.py).

Input: a JSON list of documents ``[[dialogue / text lines], [{"question", "choice": [...],
"answer"}, ...], document id]``; unlabelled files (inference) may leave out ``answer`` and give each
question an ``id``.  Each (document, question, choice) is one sequence, in UER-py's order
``[CLS] choice [SEP] question [SEP] document [SEP]`` (segment A: choice and question), the document
lines joined by newlines and cut first when too long.  Predictions: one JSON object
``{"id": <question id>, "label": <choice index>}`` per line, as UER-py writes them."""

import argparse
import json
from typing import List

import numpy as np

from uer.errors import DataError
from uer.registry import TASKS
from uer.tasks.base import TaskData, split_flag
from uer.tasks.multiple_choice import MultipleChoiceTask, encode_choice, read_json_file

C3_FORMAT = "a C3 JSON list of [[document lines], [{\"question\", \"choice\", \"answer\"} ...], id]"


@TASKS.register("c3")
class C3Task(MultipleChoiceTask):
    name = "c3"
    default_max_choices = 4
    default_seq_length = 512     # UER-py's C3 runs use 512; capped at the model's max_seq_length

    @classmethod
    def from_args(cls, tokenizer, args: argparse.Namespace, saved: dict) -> "C3Task":
        return cls(tokenizer, args.seq_length, cls.choices_from_args(args, saved))

    def read(self, path: str, split: str) -> TaskData:
        flag = split_flag(split)
        labelled = split != "infer"
        raw = read_json_file(path, flag, C3_FORMAT)
        if not isinstance(raw, list):
            raise DataError(f"{flag} {path}: expected {C3_FORMAT}, got a JSON {type(raw).__name__}")
        vocab, encode = self.tokenizer.vocab, self.tokenizer.encode
        examples = []
        for i, document in enumerate(raw):
            where = f"{flag} {path}: document {i}"
            if not isinstance(document, list) or len(document) < 2:
                raise DataError(f"{where} must be a list [[document lines], [questions], id]")
            lines, questions = document[0], document[1]
            if isinstance(lines, str):
                lines = [lines]
            if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
                raise DataError(f"{where}: its first item must be the list of document lines (strings)")
            if not isinstance(questions, list) or not questions:
                raise DataError(f"{where}: its second item must be a non-empty list of questions")
            doc_id = document[2] if len(document) > 2 else i
            doc_ids = encode("\n".join(lines))
            for j, q in enumerate(questions):
                at = f"{where} question {j}"
                if not isinstance(q, dict):
                    raise DataError(f"{at} must be an object {{\"question\", \"choice\", \"answer\"}}")
                missing = [k for k in ("question", "choice") + (("answer",) if labelled else ()) if k not in q]
                if missing:
                    needs = "\"question\", \"choice\" and \"answer\"" if labelled else "\"question\" and \"choice\""
                    raise DataError(f"{at} has no {' / '.join(repr(k) for k in missing)} key; every question of "
                                    f"this file needs {needs}")
                choices = q["choice"]
                if not isinstance(q["question"], str):
                    raise DataError(f"{at}: \"question\" must be a string")
                if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                    raise DataError(f"{at}: \"choice\" must be a non-empty list of strings")
                if len(choices) > self.max_choices_num:
                    raise self.too_many_choices(at, len(choices))
                example = {"qid": q.get("id", f"{doc_id}-{j}"), "document": i, "question": j}
                if labelled:
                    answer = q["answer"]
                    if not isinstance(answer, str) or answer not in choices:
                        raise DataError(f"{at}: the answer {json.dumps(answer, ensure_ascii=False)} is not one of "
                                        f"its choices {json.dumps(choices, ensure_ascii=False)}")
                    example["label"] = choices.index(answer)
                q_ids = encode(q["question"])
                example["choices"] = [encode_choice(vocab, encode(c), q_ids, doc_ids, self.seq_length)
                                      for c in choices]
                examples.append(example)
        if not examples:
            raise DataError(f"{flag} {path} holds no question; expected {C3_FORMAT}")
        return TaskData(examples, path, split)

    def prediction_lines(self, data: TaskData, outputs: np.ndarray) -> List[str]:
        return [json.dumps({"id": e["qid"], "label": int(o.argmax())}, ensure_ascii=False)
                for e, o in zip(data.examples, outputs)]
