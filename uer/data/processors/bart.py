"""BART instances: sentence permutation here, text infilling in the collator.

Corpus: one sentence per line, documents separated by blank lines (as UER-py's bart processor).
Each document is cut into chunks of whole sentences of at most ``seq_length - 2`` tokens; the
encoder input is ``[CLS] the chunk's sentences in a random order [SEP]`` (drawn here, once per
``--dup_factor`` round, as UER-py does) and the ``tgt`` stream is the chunk in its original order
followed by ``[SEP]``.  Text infilling — Poisson(3) span lengths including zero-length insertions,
each span one [MASK], 30% of the tokens — is applied to the encoder input afresh every epoch by the
collator (uer.data.noising.BartNoiser).
"""

from typing import List

import numpy as np

from uer.data.noising import BART_DEFAULTS, check_bart_options
from uer.data.processors.base import Doc, Instance, Processor, flatten
from uer.data.processors.bert import tokenize_sentences
from uer.data.processors.chunks import Document, sentence_chunks
from uer.registry import PROCESSORS


@PROCESSORS.register("bart")
class BartProcessor(Processor):
    name = "bart"
    fields = ()
    corpus_format = "documents"
    streams = ("src", "tgt")
    seq2seq = True
    options = dict(BART_DEFAULTS)

    def __init__(self, vocab, seq_length: int, infilling_ratio: float = 0.3, poisson_lambda: float = 3.0,
                 **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        check_bart_options(infilling_ratio, poisson_lambda)
        self.infilling_ratio, self.poisson_lambda = float(infilling_ratio), float(poisson_lambda)

    def noising(self) -> dict:
        return {"kind": "bart", "infilling_ratio": self.infilling_ratio, "poisson_lambda": self.poisson_lambda}

    def meta(self) -> dict:
        return {"tgt_seq_length": self.seq_length - 1}

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Document]:
        return tokenize_sentences(docs, tokenizer)

    def build(self, documents: List[Document], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for document in documents:
            for chunk in sentence_chunks(document, self.seq_length - 2):
                order = rng.permutation(len(chunk))
                src = [self.cls_id, *flatten([chunk[i] for i in order]), self.sep_id]
                tgt = [*flatten(chunk), self.sep_id]
                instances.append(({"src": np.asarray(src, np.int32), "tgt": np.asarray(tgt, np.int32)}, ()))
        return instances
