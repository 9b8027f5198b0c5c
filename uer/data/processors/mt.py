"""Machine-translation instances: ``source<TAB>target`` lines, the target in its own vocabulary.

The source side is tokenized with the preprocess tokenizer (``--vocab_path``/``--tokenizer``), the
target side with ``--tgt_vocab_path``/``--tgt_spm_model_path`` and ``--tgt_tokenizer`` (UER-py's
flags).  ``src`` = ``[CLS] source [SEP]`` cut to ``--seq_length``; ``tgt`` = ``target [SEP]`` in
target-vocabulary ids, cut to ``--tgt_seq_length`` (the collator prepends the target ``[CLS]`` as
the decoder's start token).  A line without exactly one tab is an error naming the file and line.
"""

from typing import List, Tuple

import numpy as np

from uer.data.processors.base import Doc, Instance, Processor
from uer.data.processors.pairs import tokenize_pairs
from uer.errors import ConfigError
from uer.registry import PROCESSORS

Pair = Tuple[List[int], List[int]]


@PROCESSORS.register("mt")
class MtProcessor(Processor):
    name = "mt"
    fields = ()
    specials = ("cls", "sep", "pad", "unk")
    streams = ("src", "tgt")
    seq2seq = True
    options = {"tgt_tokenizer": None, "tgt_seq_length": 128}

    def __init__(self, vocab, seq_length: int, tgt_tokenizer=None, tgt_seq_length: int = 128, **kwargs):
        super().__init__(vocab, seq_length, **kwargs)
        if tgt_tokenizer is None:
            raise ConfigError("--data_processor mt needs the target side's vocabulary: pass --tgt_vocab_path "
                              "(or --tgt_spm_model_path) and --tgt_tokenizer, as in UER-py")
        if tgt_seq_length < 2:
            raise ConfigError(f"--tgt_seq_length {tgt_seq_length} must be >= 2 (one token and [SEP])")
        tgt_tokenizer.vocab.require(self.specials, purpose="the mt processor's target vocabulary (--tgt_vocab_path)")
        self.tgt_tokenizer = tgt_tokenizer
        self.tgt_seq_length = tgt_seq_length
        self.tgt_sep_id = int(tgt_tokenizer.vocab.sep_id)

    def meta(self) -> dict:
        return {"tgt_seq_length": self.tgt_seq_length, "tgt_tokenizer": self.tgt_tokenizer.describe()}

    def tokenize(self, docs: List[Doc], tokenizer) -> List[Pair]:
        return tokenize_pairs(docs, self.corpus_path, tokenizer, self.tgt_tokenizer, "source and target")

    def build(self, pairs: List[Pair], rng: np.random.Generator) -> List[Instance]:
        instances: List[Instance] = []
        for source, target in pairs:
            src = [self.cls_id, *source[: self.seq_length - 2], self.sep_id]
            tgt = [*target[: self.tgt_seq_length - 1], self.tgt_sep_id]
            instances.append(({"src": np.asarray(src, np.int32), "tgt": np.asarray(tgt, np.int32)}, ()))
        return instances
