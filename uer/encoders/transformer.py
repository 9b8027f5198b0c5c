"""The transformer encoder: post-LN (BERT) or pre-LN (GPT-2), dense or gated FFN, optional ALBERT
factorised embeddings and cross-layer parameter sharing."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from uer.config import ModelConfig
from typing import Optional

from uer.layers.attention import MultiHeadAttention, PositionScheme
from uer.layers.feed_forward import build_feed_forward
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.norms import build_norm
from uer.layers.t5_position import build_relative_position
from uer.registry import ENCODERS
from uer.partitioned import full_numel, full_shape


class TransformerLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        bias = not config.remove_transformer_bias
        self.pre_norm = config.layernorm_positioning == "pre"
        self.attention = MultiHeadAttention(config.hidden_size, config.heads_num, config.head_size,
                                            config.attention_dropout_prob, bias=bias,
                                            scale=1.0 if config.remove_attention_scale else None)
        self.feed_forward = build_feed_forward(config.feed_forward, config.hidden_size,
                                               config.feedforward_size, config.hidden_act, bias=bias)
        self.norm_1 = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps)
        self.norm_2 = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps)
        self.dropout_1 = nn.Dropout(config.dropout)
        self.dropout_2 = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: AttentionMask,
                position: Optional[PositionScheme] = None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout_1(self.attention(self.norm_1(x), mask, position))
            return x + self.dropout_2(self.feed_forward(self.norm_2(x)))
        x = self.norm_1(x + self.dropout_1(self.attention(x, mask, position)))
        return self.norm_2(x + self.dropout_2(self.feed_forward(x)))


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.mask_kind = config.mask
        self.layers_num = config.layers_num
        self.parameter_sharing = config.parameter_sharing
        self.activation_checkpointing = False   # switched on by the trainer, not part of the model
        self.linear = nn.Linear(config.emb_size, config.hidden_size) \
            if config.factorized_embedding_parameterization else None
        count = 1 if config.parameter_sharing else config.layers_num
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(count))
        self.final_norm = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps) \
            if config.layernorm_positioning == "pre" else None
        # Attention-level positions, shared by all layers (T5 buckets: bidirectional in the encoder).
        self.position: Optional[PositionScheme] = build_relative_position(config, bidirectional=True)

    def forward(self, emb: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """emb: (B, L, emb_size); seg: (B, L) with 0 at padding -> hidden (B, L, hidden_size)."""
        mask = build_attention_mask(self.mask_kind, seg)
        x = self.linear(emb) if self.linear is not None else emb
        for i in range(self.layers_num):
            layer = self.layers[0 if self.parameter_sharing else i]
            if self.activation_checkpointing and self.training:
                x = checkpoint(layer, x, mask, self.position, use_reentrant=False)
            else:
                x = layer(x, mask, self.position)
        return self.final_norm(x) if self.final_norm is not None else x

    def matmul_params_per_token(self) -> int:
        """Parameters used in matrix products per token per forward (shared layers count each use)."""
        per_layer = sum(full_numel(p) for p in self.layers[0].parameters() if len(full_shape(p)) == 2)
        extra = full_numel(self.linear.weight) if self.linear is not None else 0
        return per_layer * self.layers_num + extra
