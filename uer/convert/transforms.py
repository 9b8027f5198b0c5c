"""Tensor transforms used by the parameter tables, each with its inverse.

A transform turns the Hugging Face tensors of one table entry into the uer tensors (``to_uer``) and
back (``to_hf``).  Every transform is a pure copy or re-arrangement, so a round trip reproduces the
original tensors exactly; the only rows a transform leaves behind are rows the other side has no
slot for and never reads (padding rows), and those are reported in ``notes``.
"""

from dataclasses import dataclass
from typing import List

import torch

from uer.errors import CheckpointError


@dataclass(frozen=True)
class Sizes:
    """What the transforms need to know, read from the configs (never passed by hand)."""
    vocab_size: int              # real vocabulary rows (Hugging Face side)
    padded_vocab_size: int       # our rows, rounded up to a multiple of 64
    type_vocab_size: int = 2     # Hugging Face token types; ours are 1..type_vocab_size, 0 = padding
    position_offset: int = 0     # RoBERTa: position p of ours is row p + padding_idx + 1 of theirs


class Transform:
    """``to_uer(hf_tensors, sizes, notes) -> uer_tensors`` and its inverse ``to_hf``."""
    name = "transform"

    def to_uer(self, tensors: List[torch.Tensor], sizes: Sizes, notes: List[str]) -> List[torch.Tensor]:
        raise NotImplementedError

    def to_hf(self, tensors: List[torch.Tensor], sizes: Sizes, notes: List[str]) -> List[torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


def _rows(t: torch.Tensor, expected: int, what: str) -> None:
    if t.size(0) != expected:
        raise CheckpointError(f"{what}: expected {expected} rows, the tensor has {t.size(0)} "
                              f"(shape {tuple(t.shape)}); the weights do not match config.json")


def _drop_note(t: torch.Tensor, rows: str, why: str, notes: List[str]) -> None:
    if t.numel() and bool(t.ne(0).any()):
        notes.append(f"{rows} dropped ({why})")


class Identity(Transform):
    name = "identity"

    def to_uer(self, tensors, sizes, notes):
        return list(tensors)

    def to_hf(self, tensors, sizes, notes):
        return list(tensors)


class VocabRows(Transform):
    """Their (V, ...) <-> our (padded V, ...): zero rows appended, sliced off again."""
    name = "vocab_rows"

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        _rows(t, sizes.vocab_size, "vocabulary-sized tensor")
        pad = t.new_zeros((sizes.padded_vocab_size - t.size(0),) + tuple(t.shape[1:]))
        return [torch.cat([t, pad], 0)]

    def to_hf(self, tensors, sizes, notes):
        (t,) = tensors
        _rows(t, sizes.padded_vocab_size, "vocabulary-sized tensor")
        return [t[: sizes.vocab_size].clone()]


class SegmentRows(Transform):
    """Their token types 0..T-1 <-> our segment rows 1..T; our row 0 is the padding segment (HF has
    none: it masks padding through attention_mask, so the row never reaches a real token)."""
    name = "segment_rows"

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        _rows(t, sizes.type_vocab_size, "token_type_embeddings")
        if sizes.type_vocab_size > 2:
            raise CheckpointError(f"type_vocab_size {sizes.type_vocab_size}: uer has two segments "
                                  "(plus padding); models with more token types are not supported")
        out = t.new_zeros((3,) + tuple(t.shape[1:]))
        out[1: 1 + t.size(0)] = t
        return [out]

    def to_hf(self, tensors, sizes, notes):
        (t,) = tensors
        _rows(t, 3, "segment embedding")
        if sizes.type_vocab_size < 2:
            _drop_note(t[1 + sizes.type_vocab_size:], f"segment rows {1 + sizes.type_vocab_size}..2",
                       f"the Hugging Face model has {sizes.type_vocab_size} token type", notes)
        return [t[1: 1 + sizes.type_vocab_size].clone()]


class PositionOffset(Transform):
    """RoBERTa numbers positions from padding_idx + 1: our row p is their row p + offset.  Their first
    ``offset`` rows serve padding tokens only; they are not kept and come back as zeros."""
    name = "position_offset"

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        off = sizes.position_offset
        _drop_note(t[:off], f"position rows 0..{off - 1} (used by padding tokens only)",
                   "no such rows in uer; they are written back as zeros", notes)
        return [t[off:].clone()]

    def to_hf(self, tensors, sizes, notes):
        (t,) = tensors
        return [torch.cat([t.new_zeros((sizes.position_offset,) + tuple(t.shape[1:])), t], 0)]


class Transpose(Transform):
    """GPT-2's Conv1D stores (in, out); nn.Linear stores (out, in)."""
    name = "transpose"

    def to_uer(self, tensors, sizes, notes):
        return [t.t().contiguous() for t in tensors]

    def to_hf(self, tensors, sizes, notes):
        return [t.t().contiguous() for t in tensors]


class FusedQKV(Transform):
    """GPT-2's c_attn: one Conv1D (in, 3*out) weight / (3*out,) bias <-> query, key, value Linears."""
    name = "fused_qkv"

    def __init__(self, conv1d_weight: bool):
        self.weight = conv1d_weight
        self.name = "fused_qkv_weight" if conv1d_weight else "fused_qkv_bias"

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        dim = 1 if self.weight else 0
        if t.size(dim) % 3:
            raise CheckpointError(f"fused q/k/v tensor of shape {tuple(t.shape)} does not split in three")
        parts = t.chunk(3, dim=dim)
        return [p.t().contiguous() if self.weight else p.clone() for p in parts]

    def to_hf(self, tensors, sizes, notes):
        if self.weight:
            return [torch.cat([p.t() for p in tensors], 1).contiguous()]
        return [torch.cat(list(tensors), 0)]


class Duplicate(Transform):
    """One uer tensor stored twice by Hugging Face (an untied BERT head keeps ``decoder.bias``, which
    its forward uses, and ``bias``, a copy in files transformers 4 wrote).  Import takes the first
    and notes when the second differs; export writes both."""
    name = "duplicate"

    def to_uer(self, tensors, sizes, notes):
        used, copy = tensors
        if copy.shape != used.shape or not torch.equal(copy, used):
            notes.append("a duplicate Hugging Face tensor differs from the one the model uses (untied "
                         "prediction head: 'bias' vs 'decoder.bias'); the used one was kept and is "
                         "written to both on export")
        return [used]

    def to_hf(self, tensors, sizes, notes):
        (t,) = tensors
        return [t, t.clone()]


class Chain(Transform):
    """Two transforms in sequence (to_uer: first, then second; to_hf: the reverse)."""

    def __init__(self, first: Transform, second: Transform):
        self.first, self.second = first, second
        self.name = f"{first.name}+{second.name}"

    def to_uer(self, tensors, sizes, notes):
        return self.second.to_uer(self.first.to_uer(tensors, sizes, notes), sizes, notes)

    def to_hf(self, tensors, sizes, notes):
        return self.first.to_hf(self.second.to_hf(tensors, sizes, notes), sizes, notes)


IDENTITY = Identity()
VOCAB_ROWS = VocabRows()
SEGMENT_ROWS = SegmentRows()
POSITION_OFFSET = PositionOffset()
TRANSPOSE = Transpose()
QKV_WEIGHT = FusedQKV(conv1d_weight=True)
QKV_BIAS = FusedQKV(conv1d_weight=False)
DUPLICATE_VOCAB_ROWS = Chain(Duplicate(), VOCAB_ROWS)
