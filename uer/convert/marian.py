"""Marian (MarianMTModel <-> an encoder-decoder lm model): BART's names, fixed sinusoid positions in the
sin-half / cos-half layout (our "sinusoidalpos_halves"; transformers recomputes them and does not save
them, older files may: import checks a stored table, export leaves it out), no embedding norm, post-LN,
usually swish, the embedding scale per ``scale_embedding`` (true in every released model), and decoding
starts from the pad token (``decoder_start_token_id`` = ``pad_token_id``).  Models with separate source
and target vocabularies (``share_encoder_decoder_embeddings`` false) are refused."""

from typing import Any, Dict, Optional

from uer.config import ModelConfig
from uer.convert.bart import BartLikeConverter
from uer.convert.converter import Variant
from uer.convert.registry import CONVERTERS
from uer.errors import ConfigError


@CONVERTERS.register("marian")
class MarianConverter(BartLikeConverter):
    family = "marian"
    model_type = "marian"
    variants = (Variant("MarianMTModel", "pretrain", ("lm",)),)
    positions = "computed"
    embedding_norm = False
    layernorm_positioning = "post"
    data_processor = "mt"
    default_decoder_start = 0

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        if hf.get("share_encoder_decoder_embeddings", True) is False or \
                hf.get("decoder_vocab_size") not in (None, hf["vocab_size"]):
            raise ConfigError("config.json: this Marian model has separate source and target vocabularies "
                              "(share_encoder_decoder_embeddings false / decoder_vocab_size differs); uer "
                              "converts Marian models with one shared vocabulary only")
        out = super().config_to_uer(hf, variant)
        if hf.get("decoder_start_token_id") is None:      # Marian's convention: start from the pad token
            out["decoder_start_token_id"] = int(hf.get("pad_token_id", 0))
        return out

    def hf_extra(self, config: ModelConfig) -> Dict[str, Any]:
        return {"decoder_vocab_size": config.vocab_size, "share_encoder_decoder_embeddings": True}

    def special_ids(self, config: ModelConfig, special: Optional[Dict[str, int]]) -> Dict[str, Optional[int]]:
        # Marian's pad (= its decoder start) is the vocabulary's last token.
        start = config.decoder_start_token_id
        return {"eos_token_id": 0, "pad_token_id": start if start >= 0 else config.vocab_size - 1, **(special or {})}

    def default_start_from_special(self, config: ModelConfig, special: Dict[str, int]) -> int:
        return special.get("pad_token_id", config.vocab_size - 1)
