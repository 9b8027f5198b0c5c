"""Prefix-LM instances (UER-py's prefixlm): ``prefix<TAB>continuation`` lines become
``[CLS] prefix [SEP] continuation [SEP]`` with the field ``seg_a_len`` = the prefix's length
including ``[CLS]`` and ``[SEP]``.  The collator gives the prefix segment 1 and the continuation
segment 2, which the ``causal_with_prefix`` mask turns into bidirectional attention over the prefix
and causal attention over the continuation; the ``lm`` target predicts only the continuation (and
its closing ``[SEP]``).  Instances hold up to ``seq_length + 1`` tokens, the last one only a label.
A line without exactly one tab is an error naming the file and line.
"""

from typing import List, Tuple

import numpy as np

from uer.data.processors.base import Doc, Instance, Processor, truncate_seq_pair
from uer.data.processors.pairs import tokenize_pairs
from uer.registry import PROCESSORS

Pair = Tuple[List[int], List[int]]


@PROCESSORS.register("prefixlm")
class PrefixLmProcessor(Processor):
    name = "prefixlm"
    fields = ("seg_a_len",)
    specials = ("cls", "sep", "pad", "unk")
    extra_tokens = 1

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Pair]:
        return tokenize_pairs(docs, self.corpus_path, tokenizer, tokenizer, "prefix and continuation")

    def build(self, pairs: List[Pair], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for prefix, continuation in pairs:
            # seq_length + 1 tokens in all: [CLS] prefix [SEP] continuation [SEP]; cut from the back.
            prefix, continuation = truncate_seq_pair(prefix, continuation, self.seq_length + 1 - 3)
            src = np.asarray([self.cls_id, *prefix, self.sep_id, *continuation, self.sep_id], np.int32)
            instances.append((src, (len(prefix) + 2,)))
        return instances
