"""What a target asks of the data, declared on the target class, so that the collator
(uer.data.collator) builds every batch from the configured targets' declarations and has no
per-target switches.  A new target that needs batch fields declares them here-style; nothing else
is edited."""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch


@dataclass
class CollateState:
    """One batch being built.  ``src``/``seg`` (B, L): padded input ids and segment ids (1 = first
    segment, 2 = second, 0 = padding); ``collator``: the PretrainCollator (its vocabulary arrays
    ``special``/``continuation``/``random_ids``, ``mask_id``, ``masking``, ``seed``, ``max_predictions()``);
    ``out``: the tensors added so far."""
    items: Sequence[Dict[str, Any]]
    indices: np.ndarray
    epoch: int
    src: np.ndarray
    seg: np.ndarray
    collator: Any
    out: Dict[str, torch.Tensor]
    # (B, L) 1 where a token continues the previous token's word, from the dataset's word_cont
    # stream (stored by preprocess.py's segmenter); None: the vocabulary's ## / ▁ rule decides.
    word_cont: Optional[np.ndarray] = None


class BatchFields:
    """Mixed into a target class; the defaults ask nothing of the data."""
    instance_fields: Tuple[str, ...] = ()   # fields every dataset instance must hold (besides src)
    instance_fields_hint: str = ""          # the processors that provide them, for the error message
    vocab_tokens: Tuple[str, ...] = ()      # special tokens the vocabulary must have (Vocab.require)
    lookahead: int = 0                      # tokens an instance holds after its input (lm: the next one)

    @staticmethod
    def collate(state: CollateState) -> None:
        """Add this target's fields to ``state.out``; may replace ``state.src`` (masking)."""


def collate_instance_labels(state: CollateState, key: str) -> None:
    """One label per sequence, from the instances' "label" field."""
    state.out[key] = torch.tensor([int(item["label"]) for item in state.items])
