"""What a target asks of the data, declared on the target class, so that the collator
(uer.data.collator) builds every batch from the configured targets' declarations and has no
per-target switches.  A new target that needs batch fields declares them here-style; nothing else
is edited."""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from uer.layers.host_lengths import HostLengths


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
    # Encoder-decoder instances: per instance, the tokens the decoder predicts (ending in [SEP]);
    # None for encoder-only data.  ``collate_decoder_fields`` turns them into tgt_in/tgt_out/tgt_seg.
    tgt: Optional[Sequence[np.ndarray]] = None


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


def collate_decoder_fields(state: CollateState) -> None:
    """The decoder's batch fields (uer.models.seq2seq) from ``state.tgt``: ``tgt_out`` (B, T) the
    tokens to predict, ``tgt_in`` the same shifted right behind the start token (the target
    vocabulary's [CLS], as UER-py), ``tgt_seg`` 1 at real positions; T padded like src."""
    collator = state.collator
    longest = max(len(t) for t in state.tgt)
    multiple = getattr(collator, "pad_multiple", 1) or 1
    length = -(-longest // multiple) * multiple
    batch = len(state.tgt)
    tgt_in = np.full((batch, length), collator.tgt_pad_id, dtype=np.int64)
    tgt_out = np.full((batch, length), collator.tgt_pad_id, dtype=np.int64)
    tgt_seg = np.zeros((batch, length), dtype=np.int64)
    for i, tgt in enumerate(state.tgt):
        n = len(tgt)
        tgt_out[i, :n] = tgt
        tgt_in[i, 0] = collator.tgt_start_id
        tgt_in[i, 1:n] = tgt[:-1]
        tgt_seg[i, :n] = 1
    state.out["tgt_in"] = torch.from_numpy(tgt_in)
    state.out["tgt_out"] = torch.from_numpy(tgt_out)
    state.out["tgt_seg"] = torch.from_numpy(tgt_seg)
    state.out["tgt_seg_lengths"] = HostLengths.of(tgt_seg)     # the decoder's mask needs no sync
