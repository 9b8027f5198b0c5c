"""DeBERTa-v2/v3 encoder: the post-LN transformer with disentangled attention (relative positions in
log buckets, one shared relative-position table + LayerNorm, c2p and p2c terms through the layers'
own query/key projections).  Attention still runs in ``scaled_dot_product_attention``; the
disentangled terms enter as its additive float bias with scale 1/sqrt(3 * head_size)."""

from typing import Optional, Tuple

import torch

from uer.config import ModelConfig
from uer.encoders.transformer import TransformerEncoder
from uer.layers.masks import AttentionMask
from uer.layers.relative_position import DisentangledPosition
from uer.registry import ENCODERS


@ENCODERS.register("deberta")
class DebertaEncoder(TransformerEncoder):
    """The transformer encoder plus one shared disentangled position scheme.  DeBERTa-v3 defaults:
    256 position buckets, max_relative_positions = max_seq_length (-1), LayerNorm on the
    relative-position table."""

    def __init__(self, config: ModelConfig, position_buckets: int = 256, max_relative_positions: int = -1,
                 norm_rel_ebd: str = "layer_norm"):
        super().__init__(config)
        if max_relative_positions < 1:
            max_relative_positions = config.max_seq_length
        self.position = DisentangledPosition(config.hidden_size, max_relative_positions, position_buckets,
                                             norm_rel_ebd, config.layernorm, config.layernorm_eps,
                                             config.dropout)
        # The enhanced mask decoder (uer/layers/enhanced_mask_decoder.py) re-runs the last layer on
        # that layer's input; ``keep_last_layer_input`` makes forward remember it.
        self._keep_last_input = False
        self._capturing = False
        self.last_layer_input: Optional[Tuple[torch.Tensor, AttentionMask]] = None

    def keep_last_layer_input(self) -> None:
        if not self._keep_last_input:
            self._keep_last_input = True
            self.layers[-1].register_forward_pre_hook(self._remember_input)

    def _remember_input(self, layer, args) -> None:
        # Only during this encoder's forward: activation checkpointing re-runs the layer in backward.
        # With parameter sharing the one layer runs every pass; the last call is the last layer's.
        if self._capturing:
            self.last_layer_input = (args[0], args[1])

    def take_last_layer_input(self) -> Tuple[torch.Tensor, AttentionMask]:
        """The last layer's input hidden states (B, L, H) and attention mask from the latest forward
        (handed over once, so the encoder holds no activations after the step)."""
        if self.last_layer_input is None:
            raise RuntimeError("the enhanced mask decoder needs the encoder's forward to run first, on "
                               "the same batch (Model.encode, then the mlm target)")
        saved, self.last_layer_input = self.last_layer_input, None
        return saved

    def forward(self, emb: torch.Tensor, seg: torch.Tensor, lengths=None) -> torch.Tensor:
        """``lengths``: seg's ``HostLengths`` (uer.layers.host_lengths), so the mask needs no sync."""
        self._capturing = self._keep_last_input
        try:
            return super().forward(emb, seg, lengths=lengths)
        finally:
            self._capturing = False
