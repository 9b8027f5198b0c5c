"""GLM's 2D positions (Du et al. 2022): two learned tables summed, one for the position in Part A (a
Part B token takes its span's [MASK] position) and one for the position inside a Part B span (0 in
Part A, 1 .. len + 1 along a span).  The batch brings them as ``positions`` (B, 2, L) (the glm
processor's collate step, uer.data.glm_noising); without them — plain text, fine-tuning — every
token is a Part A token: positions 0 .. L - 1 and inner position 0."""

from typing import Optional

import torch
from torch import nn

from uer.config import ModelConfig
from uer.embeddings.position import check_positions
from uer.registry import EMBEDDINGS


@EMBEDDINGS.register("glm_pos")
class GlmPositionEmbedding(nn.Module):
    positional = True   # takes ``start`` / ``positions`` (uer.embeddings.embedding.Embedding)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.max_seq_length = config.max_seq_length
        self.position = nn.Embedding(config.max_seq_length, config.emb_size)
        self.block_position = nn.Embedding(config.max_seq_length, config.emb_size)

    def forward(self, src: torch.Tensor, seg: torch.Tensor, start: int = 0,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``positions``: (B, 2, L) GLM's 2D positions, or (B, L) positions in Part A (left-padded
        prompts); None: ``start`` .. ``start + L - 1`` in Part A."""
        if positions is None:
            length = start + src.size(1)
            if length > self.max_seq_length:
                raise ValueError(f"sequence of {length} tokens exceeds max_seq_length {self.max_seq_length}")
            positions = torch.arange(start, length, device=src.device).unsqueeze(0)
        if positions.dim() == 2:
            check_positions(positions, self.max_seq_length)
            return self.position(positions) + self.block_position.weight[0]
        if positions.dim() != 3 or positions.size(1) != 2:
            raise ValueError(f"glm_pos takes positions of shape (B, 2, L), got {tuple(positions.shape)}")
        check_positions(positions, self.max_seq_length)
        return self.position(positions[:, 0]) + self.block_position(positions[:, 1])
