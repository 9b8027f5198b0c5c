"""Labelled sentence(-pair) instances for classification-style pretraining or finetune data.

Corpus lines: ``label<TAB>text_a`` or ``label<TAB>text_a<TAB>text_b`` (no header; integer label
>= 0).  Instance: ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``, truncated to ``seq_length`` by
removing tokens from the end of the longer text first.
"""

from typing import List, Tuple

import numpy as np

from uer.data.processors.base import Doc, Instance, Processor, encode_ids, truncate_seq_pair
from uer.errors import DataError
from uer.registry import PROCESSORS

Example = Tuple[int, List[int], List[int], bool]   # label, tokens a, tokens b, has b


@PROCESSORS.register("cls")
class ClsProcessor(Processor):
    name = "cls"
    fields = ("seg_a_len", "label")
    corpus_format = "lines"
    specials = ("cls", "sep", "pad", "unk")

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Example]:
        examples = []
        for line_no, lines in docs:
            label, texts = self._parse(line_no, lines[0])
            a = encode_ids(tokenizer, texts[0])
            b = encode_ids(tokenizer, texts[1]) if len(texts) == 2 else []
            examples.append((label, a, b, len(texts) == 2))
        return examples

    def _parse(self, line_no: int, line: str) -> Tuple[int, List[str]]:
        where = f"{self.corpus_path}, line {line_no}"
        parts = line.split("\t")
        if len(parts) not in (2, 3):
            raise DataError(f"{where}: expected 'label<TAB>text_a' or 'label<TAB>text_a<TAB>text_b' "
                            f"for the cls processor, found {len(parts)} tab-separated field(s)")
        try:
            label = int(parts[0])
        except ValueError:
            label = -1
        if label < 0:
            raise DataError(f"{where}: label {parts[0]!r} is not an integer >= 0 "
                            "(a header line? remove it; the cls corpus has none)")
        return label, parts[1:]

    def build(self, examples: List[Example], rng: np.random.Generator) -> List[Instance]:
        instances = []
        for label, a, b, has_b in examples:
            if has_b:
                a, b = truncate_seq_pair(a, b, self.seq_length - 3)
                instances.append(self.pair(a, b, label))
            else:
                a = a[:self.seq_length - 2]
                src = np.array([self.cls_id, *a, self.sep_id], dtype=np.int32)
                instances.append((src, (len(src), label)))
        return instances
