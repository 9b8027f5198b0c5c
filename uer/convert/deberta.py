"""DeBERTa-v2/v3: DebertaV2Model <-> embedding + the deberta encoder, DebertaV2ForMaskedLM <-> mlm model,
DebertaV2ForSequenceClassification <-> Classifier (when its pooler activation is tanh).

Our encoder (``uer/encoders/deberta.py``) implements one point of DeBERTa-v2's option space, the one
DeBERTa-v3 uses: relative attention with c2p and p2c terms through the layers' own query/key
projections (share_att_key), 256 log buckets up to max_position_embeddings, a LayerNorm on the
relative-position table, no convolution layer, no embedding projection.  Any other setting in
config.json is refused by name.  Absolute positions (position_biased_input) and token types
(type_vocab_size 1 or 2) are optional embedding parts on both sides.
"""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.bert import BertConverter
from uer.convert.converter import Variant, hf_act, hf_labels_num, labels_config, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Row, linear, param
from uer.convert.transforms import IDENTITY, SEGMENT_ROWS, VOCAB_ROWS, Sizes
from uer.errors import ConfigError

DEBERTA_LAYER = [
    ("attention.query", "attention.self.query_proj"),
    ("attention.key", "attention.self.key_proj"),
    ("attention.value", "attention.self.value_proj"),
    ("attention.output", "attention.output.dense"),
    ("norm_1", "attention.output.LayerNorm"),
    ("feed_forward.linear_1", "intermediate.dense"),
    ("feed_forward.linear_2", "output.dense"),
    ("norm_2", "output.LayerNorm"),
]

POSITION_BUCKETS = 256     # DebertaEncoder's default, the one the registry builds


def _list(value) -> List[str]:
    if isinstance(value, str):
        value = value.split("|")
    return sorted(x.strip().lower() for x in (value or []))


@CONVERTERS.register("deberta-v2")
class DebertaV2Converter(BertConverter):
    family = "deberta-v2"
    model_type = "deberta-v2"
    base_prefix = "deberta."
    variants = (
        Variant("DebertaV2ForMaskedLM", "pretrain", ("mlm",)),
        Variant("DebertaV2Model", "backbone", prefixed=False),
        Variant("DebertaV2ForSequenceClassification", "classifier"),
    )
    default_targets = ("mlm",)
    data_processor = "mlm"
    mlm_head = "cls.predictions."

    def __init__(self):
        # config.json "legacy": false puts the MLM head under lm_predictions.lm_head (the layout of
        # the original DeBERTa code) instead of cls.predictions; remembered from the imported config.
        self.legacy = True

    # ---------------------------------------------------------------- configs
    def check_hf(self, hf: Dict[str, Any]) -> None:
        def refuse(key, value, wanted):
            raise ConfigError(f"config.json: '{key}' is {value!r}; uer's deberta encoder implements only "
                              f"{wanted}, so this checkpoint cannot be converted")

        # Absent keys take transformers' defaults, which differ from DeBERTa-v3's values.
        if not hf.get("relative_attention", False):
            refuse("relative_attention", hf.get("relative_attention", False), "true")
        if _list(hf.get("pos_att_type")) != ["c2p", "p2c"]:
            refuse("pos_att_type", hf.get("pos_att_type"), '["p2c", "c2p"]')
        if _list(hf.get("norm_rel_ebd", "none")) != ["layer_norm"]:
            refuse("norm_rel_ebd", hf.get("norm_rel_ebd", "none"), '"layer_norm"')
        if not hf.get("share_att_key", False):
            refuse("share_att_key", hf.get("share_att_key", False), "true")
        if int(hf.get("conv_kernel_size", 0) or 0) > 0:
            refuse("conv_kernel_size", hf["conv_kernel_size"], "0 (no convolution layer)")
        if int(hf.get("position_buckets", -1)) != POSITION_BUCKETS:
            refuse("position_buckets", hf.get("position_buckets", -1), str(POSITION_BUCKETS))
        max_rel = int(hf.get("max_relative_positions", -1))
        if max_rel >= 1 and max_rel != hf["max_position_embeddings"]:
            refuse("max_relative_positions", max_rel, "-1 (= max_position_embeddings)")
        if hf.get("embedding_size") not in (None, hf["hidden_size"]):
            refuse("embedding_size", hf["embedding_size"], "embedding_size = hidden_size (no embed_proj)")
        if int(hf.get("type_vocab_size", 0)) > 2:
            refuse("type_vocab_size", hf["type_vocab_size"], "0, 1 or 2")
        if hf.get("pooler_hidden_size") not in (None, hf["hidden_size"]):
            refuse("pooler_hidden_size", hf["pooler_hidden_size"], "pooler_hidden_size = hidden_size")

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.check_hf(hf)
        if variant.kind == "classifier" and hf.get("pooler_hidden_act", "gelu") != "tanh":
            raise ConfigError(f"config.json: 'pooler_hidden_act' is {hf.get('pooler_hidden_act', 'gelu')!r}; "
                              "uer's classifier head is dense -> tanh -> linear, so only \"tanh\" converts "
                              "exactly. Convert the backbone instead (--architecture DebertaV2Model "
                              "--discard pooler. --discard classifier.) and fine-tune a new head")
        self.legacy = bool(hf.get("legacy", True))
        embedding = ["word"]
        if hf.get("position_biased_input", True):
            embedding.append("pos")
        if int(hf.get("type_vocab_size", 0)) > 0:
            embedding.append("seg")
        hidden = hf["hidden_size"]
        out = {
            "embedding": embedding, "vocab_size": hf["vocab_size"],
            "emb_size": hidden, "hidden_size": hidden, "feedforward_size": hf["intermediate_size"],
            "heads_num": hf["num_attention_heads"], "layers_num": hf["num_hidden_layers"],
            "max_seq_length": hf["max_position_embeddings"],
            "hidden_act": hf_act(hf.get("hidden_act", "gelu")),
            "dropout": hf.get("hidden_dropout_prob", 0.1),
            "attention_dropout": hf.get("attention_probs_dropout_prob", 0.1),
            "layernorm_eps": hf.get("layer_norm_eps", 1e-7),
            "encoder": "deberta", "mask": "fully_visible", "layernorm_positioning": "post",
            # The non-legacy head always multiplies by the word embeddings.
            "tie_weights": bool(hf.get("tie_word_embeddings", True)) or not self.legacy,
        }
        out.update(self.targets_config(variant))
        if variant.kind == "classifier":
            out["labels_num"] = hf_labels_num(hf)
        return out

    def check_uer(self, config: ModelConfig) -> None:
        extra = [e for e in config.embedding if e not in ("word", "pos", "seg")]
        self.require(config, {
            "encoder": "deberta", "layernorm_positioning": "post", "layernorm": "normal",
            "feed_forward": "dense", "remove_transformer_bias": False, "mask": "fully_visible",
            "remove_embedding_layernorm": False, "parameter_sharing": False,
            "factorized_embedding_parameterization": False, "emb_size": config.hidden_size})
        if config.embedding[:1] != ["word"] or extra:
            self.require(config, {"embedding": ["word"]})
        if config.head_size * config.heads_num != config.hidden_size:
            self.require(config, {"attention_head_size": 0})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        if variant.kind == "classifier":
            self.require(config, {"pooling": "first"})
        if variant.kind == "pretrain" and config.enhanced_mask_decoder:
            raise ConfigError("the uer config: 'enhanced_mask_decoder' is true, but transformers' "
                              "DebertaV2ForMaskedLM has no enhanced mask decoder (its head reads the encoder "
                              "output), so the mlm logits would differ; export the backbone instead "
                              "(--architecture DebertaV2Model --discard target.)")
        out = {
            "architectures": [variant.hf_class], "model_type": self.model_type,
            "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
            "num_hidden_layers": config.layers_num, "num_attention_heads": config.heads_num,
            "intermediate_size": config.feedforward_size, "hidden_act": uer_act(config.hidden_act),
            "hidden_dropout_prob": config.dropout,
            "attention_probs_dropout_prob": config.attention_dropout_prob,
            "max_position_embeddings": config.max_seq_length, "layer_norm_eps": config.layernorm_eps,
            "type_vocab_size": 2 if "seg" in config.embedding else 0,
            "position_biased_input": "pos" in config.embedding,
            "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
            "share_att_key": True, "position_buckets": POSITION_BUCKETS, "max_relative_positions": -1,
            "pad_token_id": 0, "legacy": self.legacy, "tie_word_embeddings": config.tie_weights,
        }
        if variant.kind == "classifier":
            out.update(pooler_hidden_act="tanh", pooler_hidden_size=config.hidden_size, pooler_dropout=0.0,
                       **labels_config(config.labels_num))
        out.update(special or {})
        return out

    def hf_config_from_weights(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        # Microsoft's checkpoints hold the MLM head as lm_predictions.lm_head.* while their config.json
        # leaves "legacy" at transformers' default (true, cls.predictions.*): the names decide.
        names = list(state)
        if any(".lm_head." in k and k.startswith("lm_predictions.") for k in names) and \
                not any(k.startswith("cls.predictions.") for k in names):
            return {**hf, "legacy": False}
        return hf

    def fit_hf_config(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        # One token type when our second segment row is empty (as RoBERTa).
        seg = state.get("embedding.seg.embedding.weight")
        if seg is not None and seg.size(0) == 3 and not bool(seg[2].ne(0).any()):
            hf = {**hf, "type_vocab_size": 1}
        return hf

    def sizes(self, config: ModelConfig, hf: Dict[str, Any]) -> Sizes:
        return Sizes(vocab_size=config.vocab_size, padded_vocab_size=config.padded_vocab_size,
                     type_vocab_size=int(hf.get("type_vocab_size", 0)))

    # ---------------------------------------------------------------- tables
    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        rows: List[Row] = [param("embedding.word.embedding.weight", "embeddings.word_embeddings.weight",
                                 VOCAB_ROWS)]
        if "pos" in config.embedding:
            rows.append(param("embedding.pos.embedding.weight", "embeddings.position_embeddings.weight",
                              IDENTITY))
        if "seg" in config.embedding:
            rows.append(param("embedding.seg.embedding.weight", "embeddings.token_type_embeddings.weight",
                              SEGMENT_ROWS))
        rows += [linear("embedding.norm", "embeddings.LayerNorm"),
                 param("encoder.position.embedding.weight", "encoder.rel_embeddings.weight"),
                 linear("encoder.position.norm", "encoder.LayerNorm")]
        rows += [linear(f"encoder.layers.{{i}}.{ours}", f"encoder.layer.{{i}}.{theirs}")
                 for ours, theirs in DEBERTA_LAYER]
        return rows

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        if variant.kind == "backbone":
            return []
        if variant.kind == "classifier":
            return [linear("head.linear_1", "pooler.dense"), linear("head.linear_2", "classifier")]
        if not self.legacy:
            h = "lm_predictions.lm_head."
            return [linear("target.mlm.linear_1", h + "dense"), linear("target.mlm.norm", h + "LayerNorm"),
                    param("target.mlm.output_bias", h + "bias", VOCAB_ROWS)]
        return self.mlm_rows(config, "transform.dense", "transform.LayerNorm")
