"""Document boundaries inside packed sequences (llm_pretrain ``--document_mask``), turned into batch
tensors by the collator.

The dataset stores a ``doc_start`` stream: one flag per src token, 1 where a document starts.  A
sequence's first token always starts a (possibly partial) document.  From it a batch gets

* ``doc_ids`` (B, L): 1, 2, ... for the documents of each row, 0 at padding; the encoder's attention
  mask hides every key of another document (``uer.layers.masks.build_attention_mask``);
* ``positions`` (B, L): each token's position within its document (0 at a document start, 0 at
  padding), read by the position embedding and the attention-level position schemes.
"""

from typing import TYPE_CHECKING, Dict, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

DOC_START_STREAM = "doc_start"


def document_fields(items: Sequence[dict], inputs: Sequence[np.ndarray], length: int) -> Dict[str, "torch.Tensor"]:
    """``inputs``: the instances' input tokens (without the lookahead label), ``length``: the padded length."""
    import torch    # here, not at the top: the processors import this module, and preprocess.py never needs torch
    batch = len(items)
    doc_ids = np.zeros((batch, length), dtype=np.int64)
    positions = np.zeros((batch, length), dtype=np.int64)
    for i, tokens in enumerate(inputs):
        n = len(tokens)
        if n == 0:
            continue
        starts = np.asarray(items[i][DOC_START_STREAM])[:n] > 0
        starts[0] = True
        index = np.arange(n)
        doc_ids[i, :n] = np.cumsum(starts)
        positions[i, :n] = index - np.maximum.accumulate(np.where(starts, index, 0))
    return {"doc_ids": torch.from_numpy(doc_ids), "positions": torch.from_numpy(positions)}
