import math
from typing import Optional

import torch
from torch import nn

from uer.config import ModelConfig
from uer.registry import EMBEDDINGS, TARGET_EMBEDDINGS


def check_positions(positions: torch.Tensor, max_seq_length: int) -> None:
    if positions.numel() and int(positions.max()) >= max_seq_length:
        raise ValueError(f"position {int(positions.max())} exceeds max_seq_length {max_seq_length}")


@EMBEDDINGS.register("pos")
@TARGET_EMBEDDINGS.register("pos")
class PositionEmbedding(nn.Module):
    """Learned absolute positions (BERT, GPT-2)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.max_seq_length = config.max_seq_length
        self.embedding = nn.Embedding(config.max_seq_length, config.emb_size)

    positional = True   # takes ``start``: the position of src's first token (incremental decoding)

    def forward(self, src: torch.Tensor, seg: torch.Tensor, start: int = 0,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``positions`` (B, L): each token's own position (left-padded prompts); wins over ``start``."""
        if positions is not None:
            check_positions(positions, self.max_seq_length)
            return self.embedding(positions)
        length = start + src.size(1)
        if length > self.max_seq_length:
            raise ValueError(f"sequence of {length} tokens exceeds max_seq_length {self.max_seq_length}")
        return self.embedding(torch.arange(start, length, device=src.device)).unsqueeze(0)


def sinusoid_table(length: int, dim: int, layout: str = "interleaved") -> torch.Tensor:
    """(length, dim) fixed positions.  ``interleaved``: sin at even and cos at odd features (Vaswani et al.,
    tensor2tensor-style ordering used by uer's "sinusoidalpos"); ``halves``: the sines in the first half of
    the features and the cosines in the second (fairseq's and Hugging Face's PEGASUS / Marian), computed
    in float64 as they do, so the float32 tables agree bit for bit."""
    if layout == "interleaved":
        position = torch.arange(length, dtype=torch.float).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float) * (-math.log(10000.0) / dim))
        table = torch.zeros(length, dim)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq[: dim // 2])
        return table
    if layout == "uer_py":
        return _uer_py_sinusoid_table(length, dim)
    if layout != "halves":
        raise ValueError(f"sinusoid layout '{layout}' is not one of interleaved, halves, uer_py")
    if dim % 2:
        raise ValueError(f"the halves sinusoid layout needs an even emb_size, got {dim}")
    angle = torch.arange(length, dtype=torch.float64)[:, None] / torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), torch.arange(0, dim, 2, dtype=torch.float64) / dim)[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).float()


def _uer_py_sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """UER-py's / TencentPretrain's text "sinusoidalpos": sin and cos interleaved, but frequencies
    10000^(-i / (d/2 - 1)) (fairseq's spacing, not Vaswani's 10000^(-2i / d)), position p read from row
    p + 2 of their table (fairseq's padding offset).  Computed in float32 with their operations, so the
    table is theirs bit for bit."""
    half = dim // 2
    if dim % 2 or half < 2:
        raise ValueError(f"UER-py's sinusoid table needs an even emb_size >= 4 (theirs fails on odd), got {dim}")
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
    angle = torch.arange(length + 2, dtype=torch.float).unsqueeze(1) * freq.unsqueeze(0)
    table = torch.zeros(length + 2, dim)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table[2:].clone()


@EMBEDDINGS.register("sinusoidalpos")
@TARGET_EMBEDDINGS.register("sinusoidalpos")
class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sin/cos positions (Vaswani et al. 2017), sin and cos interleaved; no parameters."""
    layout = "interleaved"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.register_buffer("table", sinusoid_table(config.max_seq_length, config.emb_size, self.layout),
                             persistent=False)

    positional = True

    def forward(self, src: torch.Tensor, seg: torch.Tensor, start: int = 0,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        if positions is not None:
            check_positions(positions, self.table.size(0))
            return self.table[positions]
        length = start + src.size(1)
        if length > self.table.size(0):
            raise ValueError(f"sequence of {length} tokens exceeds max_seq_length {self.table.size(0)}")
        return self.table[start:length].unsqueeze(0)


@EMBEDDINGS.register("sinusoidalpos_halves")
@TARGET_EMBEDDINGS.register("sinusoidalpos_halves")
class HalvesSinusoidalPositionEmbedding(SinusoidalPositionEmbedding):
    """The same frequencies with the sines first and the cosines second (Hugging Face's PEGASUS and
    Marian, fairseq): a separate name, so "sinusoidalpos" models keep their table."""
    layout = "halves"


@EMBEDDINGS.register("sinusoidalpos_uer_py")
@TARGET_EMBEDDINGS.register("sinusoidalpos_uer_py")
class UerPySinusoidalPositionEmbedding(SinusoidalPositionEmbedding):
    """UER-py's / TencentPretrain's "sinusoidalpos" table (see ``_uer_py_sinusoid_table``), selected when
    their PEGASUS / Transformer checkpoints are imported (uer/convert/uer_py.py)."""
    layout = "uer_py"
