import torch
from torch import nn

from uer.config import ModelConfig
from uer.registry import EMBEDDINGS, TARGET_EMBEDDINGS


@EMBEDDINGS.register("word")
@TARGET_EMBEDDINGS.register("word")
class WordEmbedding(nn.Module):
    """Token embeddings; rows padded to a multiple of 64 (the extra rows are never indexed)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embedding = nn.Embedding(config.padded_vocab_size, config.emb_size)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return self.embedding(src)
