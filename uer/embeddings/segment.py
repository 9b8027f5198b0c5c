import torch
from torch import nn

from uer.config import ModelConfig
from uer.registry import EMBEDDINGS, TARGET_EMBEDDINGS


@EMBEDDINGS.register("seg")
@TARGET_EMBEDDINGS.register("seg")
class SegmentEmbedding(nn.Module):
    """Segment ids as in UER-py: 0 padding, 1 first segment, 2 second segment."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embedding = nn.Embedding(3, config.emb_size)

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.embedding(seg)
