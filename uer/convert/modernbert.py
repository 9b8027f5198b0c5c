"""ModernBERT (``ModernBertForMaskedLM`` <-> mlm model, ``ModernBertModel`` <-> embedding + encoder).

A pre-norm encoder: token embeddings + LayerNorm (no positions), rotary positions (rotate-half, so q/k
rows are copied as they are) with one base for global layers and another for sliding-window ones,
layer 0 without a pre-attention norm (the embedding's norm serves), a GeGLU feed-forward, a final norm,
and the mlm head dense -> act -> norm -> decoder tied to the embedding.  By default nothing has a bias
(``attention_bias`` / ``mlp_bias`` / ``norm_bias`` / ``classifier_bias`` false) except the decoder.

Fused tensors: ``Wqkv`` (3H, H) is query, key, value stacked by rows (transformers views it as
(3, heads, head_dim)); ``Wi`` (2F, H) is chunked in two and ``act(first) * second`` is computed, so its
first half is our ``linear_gate`` and its second our ``linear_1``.

Layer pattern: transformers 5 writes ``layer_types`` (``full_attention`` / ``sliding_attention``),
older files ``global_attn_every_n_layers``; sliding layers see |i - j| <= local_attention / 2, which is
our ``local_attention_window`` = local_attention.  Rotary bases come from ``rope_parameters`` (5) or
``global_rope_theta`` / ``local_rope_theta`` (4); export writes both spellings.

Dropout: ModernBERT's ``attention_dropout`` drops attention probabilities *and* the attention output;
ours drops the probabilities (``attention_dropout``) and every residual branch (``dropout``, from
``mlp_dropout``).  Inference is the same; training with non-zero attention dropout differs.
"""

from typing import Any, Dict, List, Optional

import torch

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant, hf_act, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Entry, Row, Tied, param
from uer.convert.transforms import VOCAB_ROWS, Transform
from uer.errors import CheckpointError, ConfigError
from uer.layers.local_attention import is_local_layer

GLOBAL, LOCAL = "full_attention", "sliding_attention"
# The uer settings every ModernBERT has.
MODERNBERT_SHAPE = {"encoder": "transformer", "embedding": ["word"], "layernorm_positioning": "pre",
                    "layernorm": "normal", "feed_forward": "gated", "mask": "fully_visible",
                    "remove_embedding_layernorm": False, "first_layer_attention_norm": False,
                    "rotary_position_embedding": True, "alibi_position_embedding": False,
                    "relative_position_embedding": False, "parameter_sharing": False,
                    "factorized_embedding_parameterization": False, "kv_heads_num": 0, "attention_head_size": 0,
                    "attention_qkv_bias": False, "scale_embedding": False, "remove_attention_scale": False}


class SplitRows(Transform):
    """One fused Linear's weight or bias, stacked by rows <-> ``parts`` equal Linears, in order."""

    def __init__(self, parts: int, what: str):
        self.parts, self.name = parts, f"split_rows_{parts}"
        self.what = what

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        if t.size(0) % self.parts:
            raise CheckpointError(f"{self.what} of shape {tuple(t.shape)} does not split in {self.parts} by rows")
        return [p.clone() for p in t.chunk(self.parts, dim=0)]

    def to_hf(self, tensors, sizes, notes):
        return [torch.cat(list(tensors), 0)]


QKV = SplitRows(3, "Wqkv (query, key, value)")
GEGLU = SplitRows(2, "Wi (activated half, multiplied half)")


def layer_pattern(hf: Dict[str, Any]) -> List[str]:
    """Each layer's attention type from ``layer_types`` or ``global_attn_every_n_layers`` (default 3)."""
    layers = hf["num_hidden_layers"]
    types = hf.get("layer_types")
    if types is None:
        every = int(hf.get("global_attn_every_n_layers", 3))
        types = [LOCAL if i % every else GLOBAL for i in range(layers)]
    if len(types) != layers or any(t not in (GLOBAL, LOCAL) for t in types):
        raise ConfigError(f"config.json: layer_types must name '{GLOBAL}' or '{LOCAL}' for each of the "
                          f"{layers} layers, got {types}")
    return list(types)


def every_n_from_pattern(types: List[str]) -> int:
    """Our global_attention_every_n_layers for a pattern (0: all local); refuses other patterns."""
    if all(t == GLOBAL for t in types):
        return 1
    if all(t == LOCAL for t in types):
        return 0
    globals_ = [i for i, t in enumerate(types) if t == GLOBAL]
    every = globals_[1] if len(globals_) > 1 else len(types)
    expected = [LOCAL if i % every else GLOBAL for i in range(len(types))]
    if types != expected:
        raise ConfigError(f"config.json: layer_types {types} is not 'a global layer every n layers from layer 0', "
                          "the pattern uer implements; this checkpoint cannot be converted")
    return every


def rope_thetas(hf: Dict[str, Any]) -> Dict[str, float]:
    params = hf.get("rope_parameters") if isinstance(hf.get("rope_parameters"), dict) else {}
    out = {}
    for kind, old_key, default in ((GLOBAL, "global_rope_theta", 160000.0), (LOCAL, "local_rope_theta", 10000.0)):
        p = params.get(kind) or {}
        if p.get("rope_type", "default") != "default" or hf.get("rope_scaling"):
            raise ConfigError(f"config.json: ModernBERT rope scaling ({p.get('rope_type') or hf.get('rope_scaling')}) "
                              "is not implemented by uer's converter; this checkpoint cannot be converted")
        out[kind] = float(p.get("rope_theta", hf.get(old_key, default)))
    return out


@CONVERTERS.register("modernbert")
class ModernBertConverter(Converter):
    family = "modernbert"
    model_type = "modernbert"
    base_prefix = "model."
    variants = (Variant("ModernBertForMaskedLM", "pretrain", ("mlm",)),
                Variant("ModernBertModel", "backbone", prefixed=False))
    default_targets = ("mlm",)
    data_processor = "mlm"
    buffers = (r"(^|\.)rotary_emb\.\w*inv_freq$",)

    # ---------------------------------------------------------------- configs
    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        attention_bias, mlp_bias = bool(hf.get("attention_bias", False)), bool(hf.get("mlp_bias", False))
        if attention_bias != mlp_bias:
            raise ConfigError(f"config.json: attention_bias {attention_bias} and mlp_bias {mlp_bias} differ; uer's "
                              "remove_transformer_bias sets both, so this checkpoint cannot be converted")
        if not hf.get("decoder_bias", True):
            raise ConfigError("config.json: decoder_bias false; uer's mlm head always has an output bias, so this "
                              "checkpoint cannot be converted")
        act = hf.get("hidden_activation", "gelu")
        if hf.get("classifier_activation", "gelu") != act:
            raise ConfigError(f"config.json: classifier_activation '{hf.get('classifier_activation')}' differs from "
                              f"hidden_activation '{act}'; uer's mlm head uses the encoder's activation, so this "
                              "checkpoint cannot be converted")
        width, heads = hf["hidden_size"], hf["num_attention_heads"]
        types = layer_pattern(hf)
        every = every_n_from_pattern(types)
        thetas = rope_thetas(hf)
        out = {
            **MODERNBERT_SHAPE, "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": hf["intermediate_size"], "heads_num": heads, "layers_num": hf["num_hidden_layers"],
            "max_seq_length": hf.get("max_position_embeddings", 8192), "hidden_act": hf_act(act),
            "dropout": float(hf.get("mlp_dropout", 0.0)), "attention_dropout": float(hf.get("attention_dropout", 0.0)),
            "layernorm_eps": float(hf.get("norm_eps", 1e-5)), "layernorm_bias": bool(hf.get("norm_bias", False)),
            "remove_transformer_bias": not attention_bias, "mlm_dense_bias": bool(hf.get("classifier_bias", False)),
            "tie_weights": bool(hf.get("tie_word_embeddings", True)), "rope_theta": thetas[GLOBAL],
        }
        if every != 1:         # some layers slide
            out.update(local_attention_window=int(hf.get("local_attention", 128)),
                       global_attention_every_n_layers=every, local_rope_theta=thetas[LOCAL])
        out.update(self.targets_config(variant))
        if variant.kind != "pretrain":
            out.pop("mlm_dense_bias")      # no mlm head in the model
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require(config, {**MODERNBERT_SHAPE, "emb_size": config.hidden_size})
        self.require(config, {"rope_scaling": config.rope_scaling.__class__()})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        types = [LOCAL if is_local_layer(config, i) else GLOBAL for i in range(config.layers_num)]
        local_theta = config.local_rope_theta or config.rope_theta
        bias = not config.remove_transformer_bias
        out = {
            "architectures": [variant.hf_class], "model_type": self.model_type, "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size, "intermediate_size": config.feedforward_size,
            "num_hidden_layers": config.layers_num, "num_attention_heads": config.heads_num,
            "hidden_activation": uer_act(config.hidden_act), "classifier_activation": uer_act(config.hidden_act),
            "max_position_embeddings": config.max_seq_length, "norm_eps": config.layernorm_eps,
            "norm_bias": config.layernorm_bias, "attention_bias": bias, "mlp_bias": bias,
            "classifier_bias": config.mlm_dense_bias, "decoder_bias": True,
            "attention_dropout": config.attention_dropout_prob, "mlp_dropout": config.dropout,
            "embedding_dropout": config.dropout, "tie_word_embeddings": config.tie_weights,
            "local_attention": config.local_attention_window or 128, "layer_types": types,
            "rope_parameters": {GLOBAL: {"rope_type": "default", "rope_theta": config.rope_theta},
                                LOCAL: {"rope_type": "default", "rope_theta": local_theta}},
            "global_rope_theta": config.rope_theta, "local_rope_theta": local_theta,
            "pad_token_id": 0, "bos_token_id": None, "eos_token_id": None, "cls_token_id": None, "sep_token_id": None,
        }
        if config.global_attention_every_n_layers or not config.local_attention_window:
            out["global_attn_every_n_layers"] = config.global_attention_every_n_layers or 1
        out.update(special or {})
        return out

    # ---------------------------------------------------------------- tables
    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        bias = not config.remove_transformer_bias

        def linear(ours: str, theirs: str, with_bias: bool) -> List[Row]:
            rows: List[Row] = [param(ours + ".weight", theirs + ".weight")]
            return rows + [param(ours + ".bias", theirs + ".bias")] if with_bias else rows

        def fused(ours: List[str], theirs: str, transform: SplitRows) -> List[Row]:
            names = ("weight", "bias") if bias else ("weight",)
            return [Entry(tuple(f"{o}.{n}" for o in ours), (f"{theirs}.{n}",), transform) for n in names]

        rows: List[Row] = [param("embedding.word.embedding.weight", "embeddings.tok_embeddings.weight", VOCAB_ROWS)]
        rows += linear("embedding.norm", "embeddings.norm", config.layernorm_bias)
        # Explicit layer numbers, not {i}: layer 0 has no attention norm.
        for i in range(config.layers_num):
            a, h = f"encoder.layers.{i}.", f"layers.{i}."
            if i > 0:
                rows += linear(a + "norm_1", h + "attn_norm", config.layernorm_bias)
            rows += fused([a + "attention.query", a + "attention.key", a + "attention.value"], h + "attn.Wqkv", QKV)
            rows += linear(a + "attention.output", h + "attn.Wo", bias)
            rows += linear(a + "norm_2", h + "mlp_norm", config.layernorm_bias)
            rows += fused([a + "feed_forward.linear_gate", a + "feed_forward.linear_1"], h + "mlp.Wi", GEGLU)
            rows += linear(a + "feed_forward.linear_2", h + "mlp.Wo", bias)
        rows += linear("encoder.final_norm", "final_norm", config.layernorm_bias)
        return rows

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        if variant.kind != "pretrain":
            return []
        rows: List[Row] = [param("target.mlm.linear_1.weight", "head.dense.weight"),
                           param("target.mlm.norm.weight", "head.norm.weight"),
                           param("target.mlm.output_bias", "decoder.bias", VOCAB_ROWS)]
        if config.mlm_dense_bias:
            rows.append(param("target.mlm.linear_1.bias", "head.dense.bias"))
        if config.layernorm_bias:
            rows.append(param("target.mlm.norm.bias", "head.norm.bias"))
        if config.tie_weights:
            rows.append(Tied("decoder.weight", self.base_prefix + "embeddings.tok_embeddings.weight"))
        else:
            rows.append(param("target.mlm.output_weight", "decoder.weight", VOCAB_ROWS))
        return rows
