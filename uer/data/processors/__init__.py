"""Data processors: raw corpus blocks -> instances (registered in ``uer.registry.PROCESSORS``).

Importing this package registers every processor; :func:`build_processor` builds one by name.
"""

from typing import Optional

from uer.data.processors.base import Doc, Instance, Packer, Processor, truncate_seq_pair
from uer.data.processors import llm_pretrain, llm_sft  # noqa: F401  (registration)
from uer.data.processors import albert, bert, cls, lm, mlm  # noqa: F401  (registration)
from uer.data.processors import bart, gsg, mt, prefixlm, t5  # noqa: F401  (registration)
from uer.data.processors import glm, ul2  # noqa: F401  (registration)
from uer.errors import ConfigError
from uer.registry import PROCESSORS


def build_processor(name: str, vocab, seq_length: int, short_seq_prob: float = 0.1,
                    full_sentences: bool = False, corpus_path: str = "<corpus>",
                    options: Optional[dict] = None) -> Processor:
    """Build the processor called ``name``; unknown names fail listing the valid ones.
    ``options``: processor-specific settings (``Processor.options``); those the processor does not
    take are ignored unless they differ from None (a flag given for another processor: refused)."""
    cls_ = PROCESSORS.get(name, where="--data_processor")
    given = {k: v for k, v in (options or {}).items() if v is not None}
    foreign = sorted(set(given) - set(cls_.options))
    if foreign:
        takers = {k: [n for n in PROCESSORS.names() if k in PROCESSORS.get(n).options] for k in foreign}
        raise ConfigError("; ".join(f"--{k} is an option of the {', '.join(takers[k]) or 'no'} processor(s), "
                                    f"not of '{name}'" for k in foreign) + "; drop it or change --data_processor")
    return cls_(vocab, seq_length, short_seq_prob=short_seq_prob, full_sentences=full_sentences,
                corpus_path=corpus_path, **given)


__all__ = ["Doc", "Instance", "Packer", "Processor", "build_processor", "truncate_seq_pair"]
