"""ALBERT sentence-order prediction (SOP) instances.

Same corpus format and chunking as NSP (:mod:`uer.data.processors.bert`), but B is always the
actual continuation of A; with probability 0.5 the two are swapped (label 1 = swapped), so the
model must learn order rather than topic.

A chunk of a single sentence has no sentence boundary to split at; rather than emit an empty
segment (UER-py) or a random-document B (which would not be an order signal), it is split at a
random token boundary, and skipped if it has a single token.
"""

from typing import List

import numpy as np

from uer.data.processors.base import (Instance, Processor, flatten, target_length,
                                      truncate_seq_pair, walk_chunks)
from uer.data.processors.bert import Document, tokenize_sentences
from uer.registry import PROCESSORS


@PROCESSORS.register("albert")
class AlbertProcessor(Processor):
    name = "albert"
    fields = ("seg_a_len", "label")
    label_classes = 2
    corpus_format = "documents"

    def tokenize(self, docs, tokenizer) -> List[Document]:
        return tokenize_sentences(docs, tokenizer)

    def build(self, documents: List[Document], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for document in documents:
            instances.extend(self._from_document(document, rng))
        return instances

    def _from_document(self, document: Document, rng: np.random.Generator) -> List[Instance]:
        max_tokens = self.seq_length - 3
        target = target_length(max_tokens, self.short_seq_prob, rng)
        instances: List[Instance] = []

        def emit(chunk: Document) -> int:
            if len(chunk) >= 2:
                a_end = int(rng.integers(1, len(chunk)))
                tokens_a, tokens_b = flatten(chunk[:a_end]), flatten(chunk[a_end:])
            elif len(chunk[0]) >= 2:
                cut = int(rng.integers(1, len(chunk[0])))
                tokens_a, tokens_b = list(chunk[0][:cut]), list(chunk[0][cut:])
            else:
                return 0
            swapped = rng.random() < 0.5
            if swapped:
                tokens_a, tokens_b = tokens_b, tokens_a
            tokens_a, tokens_b = truncate_seq_pair(tokens_a, tokens_b, max_tokens, rng)
            instances.append(self.pair(tokens_a, tokens_b, int(swapped)))
            return 0

        walk_chunks(document, target, emit)
        return instances
