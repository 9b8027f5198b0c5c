"""RoBERTa-style masked-LM instances (the masking itself is dynamic, done by the training collator).

Corpus: one document per line.  Each instance is ``[CLS] chunk [SEP]`` with chunks of
``seq_length - 2`` tokens:

* default: every document is cut on its own (its last piece may be short);
* ``--full_sentences``: documents are concatenated with a ``[SEP]`` between them and cut across
  document boundaries (RoBERTa's FULL-SENTENCES), so almost no instance is short.  That packing
  must follow corpus order, so it happens in the main process (:attr:`sequential`).
"""

from typing import List

import numpy as np

from uer.data.processors.base import Doc, Instance, Packer, Processor, encode_ids
from uer.registry import PROCESSORS


@PROCESSORS.register("mlm")
class MlmProcessor(Processor):
    name = "mlm"
    fields = ("seg_a_len",)
    corpus_format = "lines"

    @property
    def sequential(self) -> bool:
        return self.full_sentences

    def tokenize(self, docs: List[Doc], tokenizer) -> List[np.ndarray]:
        ids = (encode_ids(tokenizer, " ".join(lines)) for _, lines in docs)
        return [np.asarray(d, dtype=np.int32) for d in ids if d]

    def build(self, documents: List[np.ndarray], rng: np.random.Generator) -> List[Instance]:
        # One packer per document: pieces never cross a document boundary.
        instances: List[Instance] = []
        for document in documents:
            packer = self.packer()
            instances.extend(packer.feed(document))
            instances.extend(packer.flush())
        return instances

    def segments(self, documents: List[np.ndarray]) -> List[np.ndarray]:
        return documents

    def packer(self) -> Packer:
        separator = [self.sep_id] if self.full_sentences else []
        return Packer(self.seq_length - 2, self._instance, prefix=[self.cls_id], suffix=[self.sep_id],
                      separator=separator, min_last=1)

    @staticmethod
    def _instance(src: np.ndarray) -> Instance:
        return src, (len(src),)
