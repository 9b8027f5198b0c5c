"""GPT-style causal-LM instances.

Corpus: one document per line.  Each document becomes ``[CLS] tokens [SEP]``; all documents are
concatenated in corpus order and cut into chunks of ``seq_length + 1`` tokens, one more than the
model sees, because the collator shifts each chunk into input ``[:-1]`` and target ``[1:]``.  The
last partial chunk is kept if it has at least 2 tokens (one input, one target).
"""

from typing import List

import numpy as np

from uer.data.processors.base import Doc, Packer, Processor, encode_ids
from uer.registry import PROCESSORS


@PROCESSORS.register("lm")
class LmProcessor(Processor):
    name = "lm"
    fields = ()
    corpus_format = "lines"
    specials = ("cls", "sep", "pad", "unk")
    extra_tokens = 1

    @property
    def sequential(self) -> bool:
        return True

    def tokenize(self, docs: List[Doc], tokenizer) -> List[np.ndarray]:
        ids = (encode_ids(tokenizer, " ".join(lines)) for _, lines in docs)
        return [np.asarray([self.cls_id, *d, self.sep_id], dtype=np.int32) for d in ids if d]

    def segments(self, documents: List[np.ndarray]) -> List[np.ndarray]:
        return documents

    def packer(self) -> Packer:
        return Packer(self.seq_length + 1, lambda src: (src, ()), min_last=2)
