"""PEGASUS gap-sentence generation (GSG) instances.

Corpus: one sentence per line, documents separated by blank lines.  Each document is cut into
chunks of whole sentences of at most ``seq_length - 2`` tokens; in every chunk of two or more
sentences, ``round(gap_sentence_ratio * sentences)`` of them (at least one, never all) are selected,
each replaced by one ``[MASK]`` in the encoder input ``[CLS] ... [SEP]``, and the ``tgt`` stream is
the selected sentences in document order followed by ``[SEP]`` (cut to ``--tgt_seq_length``).

Selection (``--sentence_selection_strategy``):

* ``rouge`` (default; PEGASUS's Ind-Orig): the sentences with the highest ROUGE-1 F1 against the
  rest of the chunk, each scored independently, ties to the earlier sentence;
* ``lead``: the first ones (UER-py's default);
* ``random``: uniformly at random (UER-py's other choice).

Selection is a property of the text (rouge, lead), so it is done once here, as in UER-py; ``random``
draws per ``--dup_factor`` round.
"""

import collections
from typing import List, Sequence

import numpy as np

from uer.data.processors.base import Doc, Instance, Processor, flatten
from uer.data.processors.bert import tokenize_sentences
from uer.data.processors.chunks import Document, sentence_chunks
from uer.errors import ConfigError
from uer.registry import PROCESSORS

STRATEGIES = ("rouge", "lead", "random")


def rouge1_f1(candidate: Sequence[int], reference: Sequence[int]) -> float:
    """ROUGE-1 F1 of two token sequences (clipped unigram overlap)."""
    if not candidate or not reference:
        return 0.0
    overlap = sum((collections.Counter(candidate) & collections.Counter(reference)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(candidate), overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


def gap_count(sentences: int, ratio: float) -> int:
    return min(max(int(round(sentences * ratio)), 1), sentences - 1)


def select_gap_sentences(chunk: Document, ratio: float, strategy: str, rng: np.random.Generator) -> List[int]:
    """Indices (ascending) of the sentences of ``chunk`` to mask."""
    m = gap_count(len(chunk), ratio)
    if strategy == "lead":
        return list(range(m))
    if strategy == "random":
        return sorted(int(i) for i in rng.choice(len(chunk), size=m, replace=False))
    scores = [rouge1_f1(s, flatten(chunk[:i] + chunk[i + 1:])) for i, s in enumerate(chunk)]
    ranked = sorted(range(len(chunk)), key=lambda i: (-scores[i], i))
    return sorted(ranked[:m])


@PROCESSORS.register("gsg")
class GsgProcessor(Processor):
    name = "gsg"
    fields = ()
    corpus_format = "documents"
    streams = ("src", "tgt")
    seq2seq = True
    options = {"sentence_selection_strategy": "rouge", "gap_sentence_ratio": 0.3, "tgt_seq_length": 128}

    def __init__(self, vocab, seq_length: int, sentence_selection_strategy: str = "rouge",
                 gap_sentence_ratio: float = 0.3, tgt_seq_length: int = 128, **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        if sentence_selection_strategy not in STRATEGIES:
            raise ConfigError(f"--sentence_selection_strategy {sentence_selection_strategy!r} is not one of "
                              f"{', '.join(STRATEGIES)}")
        if not 0.0 < gap_sentence_ratio < 1.0:
            raise ConfigError(f"--gap_sentence_ratio {gap_sentence_ratio} must be between 0 and 1 (PEGASUS: 0.3)")
        if tgt_seq_length < 2:
            raise ConfigError(f"--tgt_seq_length {tgt_seq_length} must be >= 2 (one token and [SEP])")
        self.strategy, self.ratio, self.tgt_seq_length = sentence_selection_strategy, gap_sentence_ratio, tgt_seq_length
        self.mask_id = int(vocab.mask_id)

    def meta(self) -> dict:
        return {"tgt_seq_length": self.tgt_seq_length, "sentence_selection_strategy": self.strategy,
                "gap_sentence_ratio": self.ratio}

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Document]:
        return tokenize_sentences(docs, tokenizer)

    def build(self, documents: List[Document], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for document in documents:
            for chunk in sentence_chunks(document, self.seq_length - 2):
                if len(chunk) >= 2:
                    instances.append(self.instance(chunk, select_gap_sentences(chunk, self.ratio, self.strategy, rng)))
        return instances

    def instance(self, chunk: Document, selected: List[int]) -> Instance:
        chosen = set(selected)
        src = [self.cls_id, *flatten([[self.mask_id] if i in chosen else s for i, s in enumerate(chunk)]), self.sep_id]
        tgt = flatten([chunk[i] for i in selected])[: self.tgt_seq_length - 1] + [self.sep_id]
        return {"src": np.asarray(src, np.int32), "tgt": np.asarray(tgt, np.int32)}, ()
