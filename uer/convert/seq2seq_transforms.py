"""Transforms only encoder-decoder tables need: the (1, V) ``final_logits_bias`` buffer of BART / PEGASUS /
Marian, and tensors that Hugging Face stores but uer computes (a sinusoid table, a zero bias).

A computed tensor is an entry with no uer names: import checks the file's copy against what uer computes
(so a checkpoint that changed it is refused, not silently replaced), export writes uer's."""

from typing import List

import torch

from uer.convert.transforms import Sizes, Transform
from uer.embeddings.position import sinusoid_table
from uer.errors import CheckpointError


class LogitsBiasRow(Transform):
    """Their ``final_logits_bias`` (1, V) <-> our lm ``output_bias`` (padded V,): zeros appended, sliced off."""
    name = "logits_bias_row"

    def to_uer(self, tensors, sizes: Sizes, notes: List[str]):
        (t,) = tensors
        if t.dim() != 2 or t.size(0) != 1 or t.size(1) != sizes.vocab_size:
            raise CheckpointError(f"final_logits_bias: expected shape (1, {sizes.vocab_size}), the tensor has "
                                  f"{tuple(t.shape)}; the weights do not match config.json")
        return [torch.cat([t[0], t.new_zeros(sizes.padded_vocab_size - sizes.vocab_size)])]

    def to_hf(self, tensors, sizes: Sizes, notes: List[str]):
        (t,) = tensors
        return [t[: sizes.vocab_size].clone().unsqueeze(0)]


class ZeroLogitsBias(Transform):
    """A uer model without an lm bias (``has_lmtarget_bias`` false) exported to a class that always has
    ``final_logits_bias``: zeros are written; importing such a file keeps a bias (see the converters)."""
    name = "zero_logits_bias"

    def to_uer(self, tensors, sizes: Sizes, notes: List[str]):
        (t,) = tensors
        if bool(t.ne(0).any()):
            raise CheckpointError("final_logits_bias is not zero but the uer config has no lm bias; set "
                                  "\"has_lmtarget_bias\": true")
        return []

    def to_hf(self, tensors, sizes: Sizes, notes: List[str]):
        return [torch.zeros(1, sizes.vocab_size)]


class ComputedSinusoids(Transform):
    """A fixed sinusoid position table (``halves`` layout, (length, dim)) that Hugging Face stores as a
    weight and uer computes: import checks it, export writes it."""

    def __init__(self, length: int, dim: int, what: str):
        self.length, self.dim, self.what = length, dim, what
        self.name = f"computed_sinusoids({length}x{dim})"

    def table(self) -> torch.Tensor:
        return sinusoid_table(self.length, self.dim, "halves")

    def to_uer(self, tensors, sizes: Sizes, notes: List[str]):
        (t,) = tensors
        expected = self.table()
        if tuple(t.shape) != tuple(expected.shape):
            raise CheckpointError(f"{self.what}: expected shape {tuple(expected.shape)} (max_position_embeddings x "
                                  f"d_model), the tensor has {tuple(t.shape)}; the weights do not match config.json")
        diff = (t.float() - expected).abs().max().item()
        if diff > 1e-6:
            raise CheckpointError(f"{self.what} is not the fixed sinusoid table (max |difference| {diff:.2e}); uer "
                                  "computes these positions, so a checkpoint with trained positions cannot be converted")
        return []

    def to_hf(self, tensors, sizes: Sizes, notes: List[str]):
        return [self.table()]


LOGITS_BIAS_ROW = LogitsBiasRow()
ZERO_LOGITS_BIAS = ZeroLogitsBias()
