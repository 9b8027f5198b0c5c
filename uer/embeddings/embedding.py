import torch
from torch import nn

from uer.config import ModelConfig
from uer.layers.norms import build_norm
from uer.registry import EMBEDDINGS


class Embedding(nn.Module):
    """Sum of the configured parts (``"embedding": ["word", "pos", "seg"]``), then norm + dropout."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        for name in config.embedding:
            self.add_module(name, EMBEDDINGS.get(name)(config))
        self.names = list(config.embedding)
        self.norm = None if config.remove_embedding_layernorm else \
            build_norm(config.layernorm, config.emb_size, config.layernorm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def word_weight(self) -> torch.Tensor:
        """The token table, shared with tied output layers."""
        return self._modules["word"].weight

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        emb = None
        for name in self.names:
            part = self._modules[name](src, seg)
            emb = part if emb is None else emb + part
        if self.norm is not None:
            emb = self.norm(emb)
        return self.dropout(emb)
