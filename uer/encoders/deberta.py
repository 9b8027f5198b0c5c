"""DeBERTa-v2/v3 encoder: the post-LN transformer with disentangled attention (relative positions in
log buckets, one shared relative-position table + LayerNorm, c2p and p2c terms through the layers'
own query/key projections).  Attention still runs in ``scaled_dot_product_attention``; the
disentangled terms enter as its additive float bias with scale 1/sqrt(3 * head_size)."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from uer.config import ModelConfig
from uer.encoders.transformer import TransformerLayer
from uer.layers.masks import AttentionMask, build_attention_mask
from uer.layers.norms import build_norm
from uer.layers.relative_position import DisentangledPosition
from uer.registry import ENCODERS


class DebertaLayer(TransformerLayer):
    """A TransformerLayer whose attention receives the shared position scheme."""

    def forward(self, x: torch.Tensor, mask: AttentionMask, position: DisentangledPosition) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout_1(self.attention(self.norm_1(x), mask, position))
            return x + self.dropout_2(self.feed_forward(self.norm_2(x)))
        x = self.norm_1(x + self.dropout_1(self.attention(x, mask, position)))
        return self.norm_2(x + self.dropout_2(self.feed_forward(x)))


@ENCODERS.register("deberta")
class DebertaEncoder(nn.Module):
    """DeBERTa-v3 defaults: 256 position buckets, max_relative_positions = max_seq_length (-1),
    LayerNorm on the relative-position table."""

    def __init__(self, config: ModelConfig, position_buckets: int = 256, max_relative_positions: int = -1,
                 norm_rel_ebd: str = "layer_norm"):
        super().__init__()
        self.mask_kind = config.mask
        self.layers_num = config.layers_num
        self.parameter_sharing = config.parameter_sharing
        self.activation_checkpointing = False   # switched on by the trainer, not part of the model
        self.linear = nn.Linear(config.emb_size, config.hidden_size) \
            if config.factorized_embedding_parameterization else None
        if max_relative_positions < 1:
            max_relative_positions = config.max_seq_length
        self.position = DisentangledPosition(config.hidden_size, max_relative_positions, position_buckets,
                                             norm_rel_ebd, config.layernorm, config.layernorm_eps,
                                             config.dropout)
        count = 1 if config.parameter_sharing else config.layers_num
        self.layers = nn.ModuleList(DebertaLayer(config) for _ in range(count))
        self.final_norm = build_norm(config.layernorm, config.hidden_size, config.layernorm_eps) \
            if config.layernorm_positioning == "pre" else None

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
        """Parameters used in matrix products per token per forward (shared layers count each use).
        The c2p/p2c score products depend on the sequence length, like attention itself, and are
        not counted here."""
        per_layer = sum(p.numel() for n, p in self.layers[0].named_parameters() if p.dim() == 2)
        extra = self.linear.weight.numel() if self.linear is not None else 0
        return per_layer * self.layers_num + extra
