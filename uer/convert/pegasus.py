"""PEGASUS (PegasusForConditionalGeneration <-> an encoder-decoder lm model): BART's names, with fixed
sinusoid positions in the sin-half / cos-half layout (our "sinusoidalpos_halves"; transformers stores
the table in the file, so import checks it and export writes it), no embedding norm, pre-LN with a final
layer norm on each stack, and the embedding scale per config.json's ``scale_embedding``."""

from typing import Dict, Optional

from uer.config import ModelConfig
from uer.convert.bart import BartLikeConverter
from uer.convert.converter import Variant
from uer.convert.registry import CONVERTERS


@CONVERTERS.register("pegasus")
class PegasusConverter(BartLikeConverter):
    family = "pegasus"
    model_type = "pegasus"
    variants = (Variant("PegasusForConditionalGeneration", "pretrain", ("lm",)),)
    positions = "stored"
    embedding_norm = False
    layernorm_positioning = "pre"
    data_processor = "gsg"
    default_decoder_start = 0        # PEGASUS starts decoding from <pad>

    def special_ids(self, config: ModelConfig, special: Optional[Dict[str, int]]) -> Dict[str, Optional[int]]:
        return {"pad_token_id": 0, "eos_token_id": 1, **(special or {})}

    def default_start_from_special(self, config: ModelConfig, special: Dict[str, int]) -> int:
        return special.get("pad_token_id", 0)
