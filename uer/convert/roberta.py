"""RoBERTa and XLM-R (RoBERTa's table with another vocabulary).

Differences from BERT, all in data: positions start at padding_idx + 1 (our row p is their row
p + 2 for padding_idx 1), one token type whose row is added to every token (our segment row 1: our
single-segment data uses segment 1), the MLM head is ``lm_head.*`` and always uses erf GELU, the
sequence-classification head is ``classifier.dense`` / ``classifier.out_proj`` on the first token,
the token-classification head one ``classifier`` linear.
"""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.bert import BertConverter
from uer.convert.converter import Variant
from uer.convert.registry import CONVERTERS
from uer.convert.table import Row, linear
from uer.convert.transforms import POSITION_OFFSET
from uer.errors import ConfigError


@CONVERTERS.register("roberta")
class RobertaConverter(BertConverter):
    family = "roberta"
    model_type = "roberta"
    base_prefix = "roberta."
    class_prefix = "Roberta"
    variants = (
        Variant("RobertaForMaskedLM", "pretrain", ("mlm",)),
        Variant("RobertaModel", "backbone", prefixed=False),
        Variant("RobertaForSequenceClassification", "classifier"),
        Variant("RobertaForTokenClassification", "tagger"),
    )
    default_targets = ("mlm",)
    data_processor = "mlm"
    position_transform = POSITION_OFFSET
    mlm_head = "lm_head."
    pad_token_id = 1

    def position_offset(self, hf: Dict[str, Any]) -> int:
        return int(hf.get("pad_token_id", self.pad_token_id)) + 1

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        out = super().config_to_uer(hf, variant)
        if variant.kind == "pretrain" and out["hidden_act"] != "gelu":
            raise ConfigError(f"config.json: hidden_act '{hf.get('hidden_act')}' — the {self.family} "
                              "MLM head always uses erf GELU while uer's mlm target uses hidden_act; "
                              "this checkpoint cannot be converted exactly")
        return out

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        if variant.kind == "pretrain" and config.hidden_act != "gelu":
            self.require(config, {"hidden_act": "gelu"})
        special = {"pad_token_id": self.pad_token_id, "bos_token_id": 0, "eos_token_id": 2, **(special or {})}
        out = super().config_to_hf(config, variant, special)
        # Positions are numbered from padding_idx + 1, so the table grows by that many rows.
        out.update(max_position_embeddings=config.max_seq_length + self.position_offset(out),
                   type_vocab_size=1)
        return out

    def fit_hf_config(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        # One token type, unless our second segment row holds something (a 2-type checkpoint).
        seg = state.get("embedding.seg.embedding.weight")
        if seg is not None and seg.size(0) == 3 and bool(seg[2].ne(0).any()):
            hf = {**hf, "type_vocab_size": 2}
        return hf

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        if variant.kind == "backbone":
            return [linear("head.linear_1", "pooler.dense", optional=True)]
        if variant.kind == "classifier":
            return [linear("head.linear_1", "classifier.dense"),
                    linear("head.linear_2", "classifier.out_proj")]
        if variant.kind == "tagger":
            return [linear("head.output", "classifier")]
        return self.mlm_rows(config, "dense", "layer_norm")


@CONVERTERS.register("xlm-roberta")
class XlmRobertaConverter(RobertaConverter):
    family = "xlm-roberta"
    model_type = "xlm-roberta"
    variants = (
        Variant("XLMRobertaForMaskedLM", "pretrain", ("mlm",)),
        Variant("XLMRobertaModel", "backbone", prefixed=False),
        Variant("XLMRobertaForSequenceClassification", "classifier"),
        Variant("XLMRobertaForTokenClassification", "tagger"),
    )
