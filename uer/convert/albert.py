"""ALBERT (AlbertForPreTraining <-> mlm + sp model with the SOP head; AlbertForMaskedLM, AlbertModel,
AlbertForSequenceClassification): factorised embeddings (emb_size -> hidden_size projection =
``encoder.linear``) and one layer shared by every depth (``parameter_sharing``)."""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.bert import BertConverter
from uer.convert.converter import Variant, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Row, linear
from uer.convert.transforms import IDENTITY

ALBERT_LAYER = [
    ("attention.query", "attention.query"),
    ("attention.key", "attention.key"),
    ("attention.value", "attention.value"),
    ("attention.output", "attention.dense"),
    ("norm_1", "attention.LayerNorm"),
    ("feed_forward.linear_1", "ffn"),
    ("feed_forward.linear_2", "ffn_output"),
    ("norm_2", "full_layer_layer_norm"),
]
SHARED_LAYER = "encoder.albert_layer_groups.0.albert_layers.0."


@CONVERTERS.register("albert")
class AlbertConverter(BertConverter):
    family = "albert"
    model_type = "albert"
    base_prefix = "albert."
    variants = (
        Variant("AlbertForPreTraining", "pretrain", ("mlm", "sp")),
        Variant("AlbertForMaskedLM", "pretrain", ("mlm",)),
        Variant("AlbertModel", "backbone", prefixed=False),
        Variant("AlbertForSequenceClassification", "classifier"),
    )
    default_targets = ("mlm", "sp")
    data_processor = "albert"
    position_transform = IDENTITY
    mlm_head = "predictions."

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        # One group of one layer is what uer's parameter_sharing is.
        self.hf_require(hf, {"num_hidden_groups": 1, "inner_group_num": 1})
        out = super().config_to_uer({"hidden_act": "gelu_new", **hf}, variant)
        out.update(emb_size=hf.get("embedding_size", 128), factorized_embedding_parameterization=True,
                   parameter_sharing=True, dropout=hf.get("hidden_dropout_prob", 0.0),
                   attention_dropout=hf.get("attention_probs_dropout_prob", 0.0))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        from uer.convert.bert import BERT_SHAPE
        self.require(config, {**BERT_SHAPE, "parameter_sharing": True,
                              "factorized_embedding_parameterization": True})
        if config.head_size * config.heads_num != config.hidden_size:
            self.require(config, {"attention_head_size": 0})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        special = {"bos_token_id": 2, "eos_token_id": 3, **(special or {})}
        out = super().config_to_hf(config, variant, special)
        out.update(embedding_size=config.emb_size, num_hidden_groups=1, inner_group_num=1,
                   hidden_act=uer_act(config.hidden_act))
        return out

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        layer = [linear(f"encoder.layers.0.{ours}", SHARED_LAYER + theirs) for ours, theirs in ALBERT_LAYER]
        return self.embedding_rows() + [linear("encoder.linear", "encoder.embedding_hidden_mapping_in")] + layer

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        p = self.base_prefix
        if variant.kind == "backbone":
            return [linear("head.linear_1", "pooler", optional=True)]
        if variant.kind == "classifier":
            return [linear("head.linear_1", p + "pooler"), linear("head.linear_2", "classifier")]
        rows = self.mlm_rows(config, "dense", "LayerNorm")
        if "sp" in variant.targets:
            rows += [linear("target.sp.linear_1", p + "pooler"),
                     linear("target.sp.linear_2", "sop_classifier.classifier")]
        return rows
