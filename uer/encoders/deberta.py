"""DeBERTa-v2/v3 encoder: the post-LN transformer with disentangled attention (relative positions in
log buckets, one shared relative-position table + LayerNorm, c2p and p2c terms through the layers'
own query/key projections).  Attention still runs in ``scaled_dot_product_attention``; the
disentangled terms enter as its additive float bias with scale 1/sqrt(3 * head_size)."""

from uer.config import ModelConfig
from uer.encoders.transformer import TransformerEncoder
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
