"""BERT next-sentence prediction (NSP) instances, following Google BERT's
create_instances_from_document.

Corpus: one sentence per line, documents separated by blank lines.  Each document is cut into
chunks of whole sentences of about ``seq_length - 3`` tokens (shorter with ``short_seq_prob``);
segment A is a random number of leading sentences of a chunk, segment B is either the rest of the
chunk (label 0, "is next") or, with probability 0.5 and always for one-sentence chunks, sentences
from a random *other* document of the same block (label 1, "random").
"""

from typing import List

import numpy as np

from uer.data.processors.base import (Doc, Instance, Processor, encode_ids, flatten, target_length,
                                      truncate_seq_pair, walk_chunks)
from uer.registry import PROCESSORS

Document = List[List[int]]   # sentences of token ids


def tokenize_sentences(docs: List[Doc], tokenizer) -> List[Document]:
    """Sentence-per-line documents -> token ids; sentences that tokenize to nothing are dropped,
    and so are documents left without sentences (they cannot contribute a segment)."""
    out = []
    for _, lines in docs:
        sentences = [ids for ids in (encode_ids(tokenizer, line) for line in lines) if ids]
        if sentences:
            out.append(sentences)
    return out


@PROCESSORS.register("bert")
class BertProcessor(Processor):
    name = "bert"
    fields = ("seg_a_len", "label")
    label_classes = 2
    corpus_format = "documents"

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Document]:
        return tokenize_sentences(docs, tokenizer)

    def build(self, documents: List[Document], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for index in range(len(documents)):
            instances.extend(self._from_document(documents, index, rng))
        return instances

    def _from_document(self, documents: List[Document], index: int,
                       rng: np.random.Generator) -> List[Instance]:
        max_tokens = self.seq_length - 3   # [CLS] A [SEP] B [SEP]
        target = target_length(max_tokens, self.short_seq_prob, rng)
        instances: List[Instance] = []

        def emit(chunk: Document) -> int:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            tokens_a = flatten(chunk[:a_end])
            unused = 0
            # Short-circuit as Google does: a one-sentence chunk always takes a random B.
            if len(chunk) == 1 or rng.random() < 0.5:
                label = 1
                tokens_b = self._random_b(documents, index, target - len(tokens_a), rng)
                unused = len(chunk) - a_end   # re-read by the next chunk, not wasted
            else:
                label = 0
                tokens_b = flatten(chunk[a_end:])
            tokens_a, tokens_b = truncate_seq_pair(tokens_a, tokens_b, max_tokens, rng)
            instances.append(self.pair(tokens_a, tokens_b, label))
            return unused

        walk_chunks(documents[index], target, emit)
        return instances

    @staticmethod
    def _random_b(documents: List[Document], index: int, target_b: int,
                  rng: np.random.Generator) -> List[int]:
        """Sentences from a random other document, from a random start, until ``target_b`` tokens.
        Like Google, give up avoiding the current document after 10 draws (a block of one
        document has no other)."""
        other = index
        for _ in range(10):
            other = int(rng.integers(0, len(documents)))
            if other != index:
                break
        document = documents[other]
        tokens: List[int] = []
        for sentence in document[int(rng.integers(0, len(document))):]:
            tokens.extend(sentence)
            if len(tokens) >= target_b:
                break
        return tokens
