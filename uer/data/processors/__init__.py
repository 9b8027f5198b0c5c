"""Data processors: raw corpus blocks -> instances (registered in ``uer.registry.PROCESSORS``).

Importing this package registers every processor; :func:`build_processor` builds one by name.
"""

from uer.data.processors.base import Doc, Instance, Packer, Processor, truncate_seq_pair
from uer.data.processors import albert, bert, cls, lm, mlm  # noqa: F401  (registration)
from uer.registry import PROCESSORS


def build_processor(name: str, vocab, seq_length: int, short_seq_prob: float = 0.1,
                    full_sentences: bool = False, corpus_path: str = "<corpus>") -> Processor:
    """Build the processor called ``name``; unknown names fail listing the valid ones."""
    cls_ = PROCESSORS.get(name, where="--data_processor")
    return cls_(vocab, seq_length, short_seq_prob=short_seq_prob, full_sentences=full_sentences,
                corpus_path=corpus_path)


__all__ = ["Doc", "Instance", "Packer", "Processor", "build_processor", "truncate_seq_pair"]
