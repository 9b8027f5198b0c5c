"""What the encoder-decoder families (T5, BART, PEGASUS, Marian) share: one table built from an encoder
part and a decoder part, each repeated over its own stack's depth (the decoder may be deeper or shallower
than the encoder), and the decoder's start token carried between config.json and the uer config."""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant
from uer.convert.table import Row, per_layer, prefixed
from uer.decoders.transformer import decoder_sizes
from uer.errors import ConfigError


class Seq2SeqConverter(Converter):
    """Subclasses give ``shared_rows`` (embeddings, heads: no layer number), ``encoder_layer_rows`` and
    ``decoder_layer_rows`` (with ``{i}``), all relative to ``base_prefix`` except ``head_rows``."""
    default_targets = ("lm",)
    # config.json's decoder start when it names none (the family's transformers default).
    default_decoder_start = 0

    def encoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        raise NotImplementedError

    def decoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        raise NotImplementedError

    def shared_rows(self, config: ModelConfig) -> List[Row]:
        raise NotImplementedError

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        return (self.shared_rows(config) + per_layer(self.encoder_layer_rows(config), config.layers_num)
                + per_layer(self.decoder_layer_rows(config), decoder_sizes(config)[0]))

    def rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        return prefixed(self.backbone_rows(config), self.base_prefix) + self.head_rows(config, variant)

    # ---------------------------------------------------------------- configs
    def decoder_start_to_uer(self, hf: Dict[str, Any]) -> Dict[str, Any]:
        start = hf.get("decoder_start_token_id")
        return {"decoder_start_token_id": self.default_decoder_start if start is None else int(start)}

    def decoder_start_to_hf(self, config: ModelConfig, special: Optional[Dict[str, int]]) -> int:
        """Ours when the config names one, else the family's convention (its pad or end token)."""
        if config.decoder_start_token_id >= 0:
            return config.decoder_start_token_id
        return self.default_start_from_special(config, special or {})

    def default_start_from_special(self, config: ModelConfig, special: Dict[str, int]) -> int:
        return self.default_decoder_start

    def require_seq2seq(self, config: ModelConfig, checks: Dict[str, Any]) -> None:
        """The checks every encoder-decoder family shares, plus the family's ``checks``."""
        if not config.decoder:
            raise ConfigError(f"the uer config has no decoder, but a Hugging Face {self.family} model is an "
                              "encoder-decoder model; choose another --architecture")
        self.require(config, {"encoder": "transformer", "decoder": "transformer", "mask": "fully_visible",
                              "parameter_sharing": False, "factorized_embedding_parameterization": False,
                              "share_embedding": True, "pretrainer": "", "enhanced_mask_decoder": False,
                              "emb_size": config.hidden_size, **checks})
        if config.tgt_vocab_size not in (0, config.vocab_size):
            raise ConfigError(f"the uer config: 'tgt_vocab_size' {config.tgt_vocab_size} differs from vocab_size "
                              f"{config.vocab_size}; Hugging Face {self.family} models convert here with one "
                              "shared vocabulary; choose another --architecture")
