import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from uer.config import ModelConfig
from uer.layers.dropout import Dropout
from uer.layers.norms import build_norm
from uer.registry import EMBEDDINGS, Registry


class SharedWordEmbedding(nn.Module):
    """The word part of a decoder's embedding when ``share_embedding`` is on: it looks tokens up in
    another embedding's table, held in a list so the table is registered (and saved) once."""

    def __init__(self, owner: "Embedding"):
        super().__init__()
        self._owner = [owner]

    @property
    def weight(self) -> torch.Tensor:
        return self._owner[0].word_weight()

    def forward(self, src: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        return F.embedding(src, self.weight)


class Embedding(nn.Module):
    """Sum of the configured parts (``"embedding": ["word", "pos", "seg"]``), then norm + dropout.
    The decoder's input embedding is the same class over ``parts`` = ``tgt_embedding`` from the
    TARGET_EMBEDDINGS registry; ``shared_word``: use that embedding's word table (share_embedding)."""

    def __init__(self, config: ModelConfig, parts: Optional[Sequence[str]] = None,
                 registry: Registry = EMBEDDINGS, shared_word: Optional["Embedding"] = None):
        super().__init__()
        parts = list(config.embedding if parts is None else parts)
        for name in parts:
            if name == "word" and shared_word is not None:
                self.add_module(name, SharedWordEmbedding(shared_word))
            else:
                self.add_module(name, registry.get(name)(config))
        self.names = parts
        # Transformer / PEGASUS: token embeddings x sqrt(d_model), positions unscaled.
        self.word_scale = math.sqrt(config.emb_size) if config.scale_embedding else 1.0
        self.norm = None if config.remove_embedding_layernorm else \
            build_norm(config.layernorm, config.emb_size, config.layernorm_eps, config.layernorm_bias)
        self.dropout = Dropout(config.dropout)

    def word_weight(self) -> torch.Tensor:
        """The token table, shared with tied output layers."""
        return self._modules["word"].weight

    def forward(self, src: torch.Tensor, seg: torch.Tensor, start: int = 0,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``start``: the position of src's first token (> 0 for a cached decoding step);
        ``positions`` (B, L): every token's own position instead (left-padded prompts)."""
        emb = None
        for name in self.names:
            module = self._modules[name]
            if getattr(module, "positional", False) and (start or positions is not None):
                part = module(src, seg, start, positions)
            else:
                part = module(src, seg)
            if name == "word" and self.word_scale != 1.0:
                part = part * self.word_scale
            emb = part if emb is None else emb + part
        if self.norm is not None:
            emb = self.norm(emb)
        return self.dropout(emb)
