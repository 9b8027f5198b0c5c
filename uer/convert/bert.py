"""BERT: BertForPreTraining <-> mlm + sp model, BertForMaskedLM <-> mlm model, BertModel <-> embedding +
encoder (pooler -> head.linear_1, the dense layer fine-tuning starts from), BertForSequenceClassification
<-> Classifier (pooler -> head.linear_1, classifier -> head.linear_2), BertForTokenClassification <->
Tagger (no pooler; classifier -> head.output), BertForQuestionAnswering <-> uer.tasks.mrc's
SpanExtractor (no pooler; qa_outputs -> head.qa_outputs)."""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant, hf_act, hf_labels_num, labels_config, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Entry, Row, Tied, linear, param
from uer.convert.transforms import DUPLICATE_VOCAB_ROWS, IDENTITY, SEGMENT_ROWS, VOCAB_ROWS

# The encoder layer, ours <- theirs ("encoder.layer.{i}." under the base model).
BERT_LAYER = [
    ("attention.query", "attention.self.query"),
    ("attention.key", "attention.self.key"),
    ("attention.value", "attention.self.value"),
    ("attention.output", "attention.output.dense"),
    ("norm_1", "attention.output.LayerNorm"),
    ("feed_forward.linear_1", "intermediate.dense"),
    ("feed_forward.linear_2", "output.dense"),
    ("norm_2", "output.LayerNorm"),
]

# What a uer config must say to be a BERT-style encoder.
BERT_SHAPE = {"encoder": "transformer", "layernorm_positioning": "post", "layernorm": "normal",
              "feed_forward": "dense", "remove_transformer_bias": False, "mask": "fully_visible",
              "remove_embedding_layernorm": False, "parameter_sharing": False,
              "factorized_embedding_parameterization": False, "embedding": ["word", "pos", "seg"]}


@CONVERTERS.register("bert")
class BertConverter(Converter):
    family = "bert"
    model_type = "bert"
    base_prefix = "bert."
    variants = (
        Variant("BertForPreTraining", "pretrain", ("mlm", "sp")),
        Variant("BertForMaskedLM", "pretrain", ("mlm",)),
        Variant("BertModel", "backbone", prefixed=False),
        Variant("BertForSequenceClassification", "classifier"),
        Variant("BertForQuestionAnswering", "question_answering"),
        Variant("BertForTokenClassification", "tagger"),
    )
    default_targets = ("mlm", "sp")
    data_processor = "bert"
    position_transform = IDENTITY
    mlm_head = "cls.predictions."          # transform.dense / transform.LayerNorm / bias / decoder

    # ---------------------------------------------------------------- configs
    def check_hf(self, hf: Dict[str, Any]) -> None:
        self.hf_require(hf, {"position_embedding_type": "absolute", "is_decoder": False,
                             "add_cross_attention": False})

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.check_hf(hf)
        hidden = hf["hidden_size"]
        out = {
            "embedding": ["word", "pos", "seg"], "vocab_size": hf["vocab_size"],
            "emb_size": hidden, "hidden_size": hidden, "feedforward_size": hf["intermediate_size"],
            "heads_num": hf["num_attention_heads"], "layers_num": hf["num_hidden_layers"],
            "max_seq_length": hf["max_position_embeddings"] - self.position_offset(hf),
            "hidden_act": hf_act(hf.get("hidden_act", "gelu")),
            "dropout": hf.get("hidden_dropout_prob", 0.1),
            "attention_dropout": hf.get("attention_probs_dropout_prob", 0.1),
            "layernorm_eps": hf.get("layer_norm_eps", 1e-12),
            "encoder": "transformer", "mask": "fully_visible", "layernorm_positioning": "post",
            "tie_weights": bool(hf.get("tie_word_embeddings", True)),
        }
        out.update(self.targets_config(variant))
        if variant.kind in ("classifier", "tagger"):
            out["labels_num"] = hf_labels_num(hf)
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require(config, BERT_SHAPE)
        if config.head_size * config.heads_num != config.hidden_size:
            self.require(config, {"attention_head_size": 0})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        if variant.kind == "classifier":     # their classifiers read the first token
            self.require(config, {"pooling": "first"})
        out = {
            "architectures": [variant.hf_class], "model_type": self.model_type,
            "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.layers_num, "num_attention_heads": config.heads_num,
            "intermediate_size": config.feedforward_size, "hidden_act": uer_act(config.hidden_act),
            "hidden_dropout_prob": config.dropout,
            "attention_probs_dropout_prob": config.attention_dropout_prob,
            "max_position_embeddings": config.max_seq_length, "type_vocab_size": 2,
            "layer_norm_eps": config.layernorm_eps, "pad_token_id": 0,
            "position_embedding_type": "absolute", "tie_word_embeddings": config.tie_weights,
        }
        if variant.kind in ("classifier", "tagger"):
            out.update(labels_config(config.labels_num))
        out.update(special or {})
        return out

    # ---------------------------------------------------------------- tables
    def embedding_rows(self) -> List[Row]:
        return [
            param("embedding.word.embedding.weight", "embeddings.word_embeddings.weight", VOCAB_ROWS),
            param("embedding.pos.embedding.weight", "embeddings.position_embeddings.weight",
                  self.position_transform),
            param("embedding.seg.embedding.weight", "embeddings.token_type_embeddings.weight", SEGMENT_ROWS),
            linear("embedding.norm", "embeddings.LayerNorm"),
        ]

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        layer = [linear(f"encoder.layers.{{i}}.{ours}", f"encoder.layer.{{i}}.{theirs}")
                 for ours, theirs in BERT_LAYER]
        return self.embedding_rows() + layer

    def mlm_rows(self, config: ModelConfig, dense: str, norm: str) -> List[Row]:
        """Our mlm target <- a BERT-style prediction head (dense -> act -> norm -> decoder + bias)."""
        h = self.mlm_head
        rows: List[Row] = [linear("target.mlm.linear_1", h + dense), linear("target.mlm.norm", h + norm)]
        word = self.base_prefix + "embeddings.word_embeddings.weight"
        if config.tie_weights:
            rows += [param("target.mlm.output_bias", h + "bias", VOCAB_ROWS),
                     Tied(h + "decoder.bias", h + "bias"), Tied(h + "decoder.weight", word)]
        else:
            # Untied, transformers 5 keeps two bias tensors and its forward uses decoder.bias.
            rows += [Entry(("target.mlm.output_bias",), (h + "decoder.bias", h + "bias"), DUPLICATE_VOCAB_ROWS),
                     param("target.mlm.output_weight", h + "decoder.weight", VOCAB_ROWS)]
        return rows

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        p = self.base_prefix
        if variant.kind == "backbone":
            return [linear("head.linear_1", "pooler.dense", optional=True)]
        if variant.kind == "classifier":
            return [linear("head.linear_1", p + "pooler.dense"), linear("head.linear_2", "classifier")]
        if variant.kind == "question_answering":     # no pooler; per-token (start, end) logits
            return [linear("head.qa_outputs", "qa_outputs")]
        if variant.kind == "tagger":          # token classification: no pooler, one linear per token
            return [linear("head.output", "classifier")]
        rows = []
        if "mlm" in variant.targets:
            rows += self.mlm_rows(config, "transform.dense", "transform.LayerNorm")
        if "sp" in variant.targets:
            rows += [linear("target.sp.linear_1", p + "pooler.dense"),
                     linear("target.sp.linear_2", "cls.seq_relationship")]
        return rows
