"""BLOOM (BloomForCausalLM <-> lm model, BloomModel <-> embedding + encoder): pre-LN with biases, a layer norm
on the word embedding (``word_embeddings_layernorm``: our embedding norm), ALiBi instead of positions, the
tanh GELU, and an ``lm_head`` tied to the word embedding.

Its q/k/v live in one ``query_key_value`` Linear whose rows are grouped by head — head 0's query, key and
value rows, then head 1's ... (not all queries first, as GPT-2's ``c_attn``) — so the split needs the head
count: ``PerHeadQKV`` below."""

from typing import Any, Dict, List, Optional

import torch

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant, hf_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Entry, Row, linear, param
from uer.convert.transforms import Transform, VOCAB_ROWS
from uer.errors import CheckpointError

BLOOM_SHAPE = {"encoder": "transformer", "layernorm_positioning": "pre", "layernorm": "normal",
               "feed_forward": "dense", "remove_transformer_bias": False, "mask": "causal",
               "remove_embedding_layernorm": False, "parameter_sharing": False,
               "factorized_embedding_parameterization": False, "embedding": ["word"], "attention_head_size": 0,
               "alibi_position_embedding": True, "rotary_position_embedding": False, "kv_heads_num": 0,
               "scale_embedding": False}


class PerHeadQKV(Transform):
    """BLOOM's fused (heads * 3 * d, ...) weight or bias, rows ordered head by head, <-> query, key, value."""

    def __init__(self, heads: int):
        self.heads = heads
        self.name = f"per_head_qkv({heads})"

    def to_uer(self, tensors, sizes, notes):
        (t,) = tensors
        if t.size(0) % (3 * self.heads):
            raise CheckpointError(f"query_key_value of shape {tuple(t.shape)} does not split into {self.heads} heads "
                                  "of query, key and value; the weights do not match config.json")
        grouped = t.reshape(self.heads, 3, t.size(0) // (3 * self.heads), *t.shape[1:])
        return [grouped[:, part].reshape(-1, *t.shape[1:]).clone() for part in range(3)]

    def to_hf(self, tensors, sizes, notes):
        parts = [p.reshape(self.heads, -1, *p.shape[1:]) for p in tensors]
        stacked = torch.stack(parts, 1)          # (heads, 3, d, ...)
        return [stacked.reshape(-1, *tensors[0].shape[1:]).contiguous()]


@CONVERTERS.register("bloom")
class BloomConverter(Converter):
    family = "bloom"
    model_type = "bloom"
    base_prefix = "transformer."
    variants = (Variant("BloomForCausalLM", "pretrain", ("lm",)), Variant("BloomModel", "backbone", prefixed=False))
    buffers = ()
    default_targets = ("lm",)
    data_processor = "lm"

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.hf_require(hf, {"apply_residual_connection_post_layernorm": False, "pretraining_tp": 1,
                             "slow_but_exact": False})
        width = hf["hidden_size"]
        out = {
            **BLOOM_SHAPE, "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": 4 * width, "heads_num": hf["n_head"], "layers_num": hf["n_layer"],
            # ALiBi has no position limit; BLOOM was trained on 2048 tokens (config.json says nothing).
            "max_seq_length": int(hf.get("seq_length") or 2048),
            "hidden_act": hf_act("gelu_new"), "dropout": float(hf.get("hidden_dropout", 0.0)),
            "attention_dropout": float(hf.get("attention_dropout", 0.0)),
            "layernorm_eps": hf.get("layer_norm_epsilon", 1e-5),
            "tie_weights": bool(hf.get("tie_word_embeddings", True)), "has_lmtarget_bias": False,
        }
        out.update(self.targets_config(variant))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        # BLOOM's GELU is the tanh approximation, which uer spells gelu_new or gelu_fast (models/bloom/).
        act = config.hidden_act if config.hidden_act in ("gelu_new", "gelu_fast", "gelu_pytorch_tanh") else "gelu_new"
        self.require(config, {**BLOOM_SHAPE, "emb_size": config.hidden_size, "hidden_act": act,
                              "feedforward_size": 4 * config.hidden_size})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        if variant.kind == "pretrain":
            self.require(config, {"has_lmtarget_bias": False})
        return {
            "architectures": [variant.hf_class], "model_type": self.model_type, "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size, "n_layer": config.layers_num, "n_head": config.heads_num,
            "layer_norm_epsilon": config.layernorm_eps, "hidden_dropout": config.dropout,
            "attention_dropout": config.attention_dropout_prob, "seq_length": config.max_seq_length,
            "apply_residual_connection_post_layernorm": False, "pretraining_tp": 1, "slow_but_exact": False,
            "tie_word_embeddings": config.tie_weights, **(special or {}),
        }

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        h, a = "h.{i}.", "encoder.layers.{i}."
        attn = a + "attention."
        qkv = PerHeadQKV(config.heads_num)
        return [
            param("embedding.word.embedding.weight", "word_embeddings.weight", VOCAB_ROWS),
            linear("embedding.norm", "word_embeddings_layernorm"),
            linear(a + "norm_1", h + "input_layernorm"),
            Entry(tuple(attn + p + ".weight" for p in ("query", "key", "value")),
                  (h + "self_attention.query_key_value.weight",), qkv),
            Entry(tuple(attn + p + ".bias" for p in ("query", "key", "value")),
                  (h + "self_attention.query_key_value.bias",), qkv),
            linear(attn + "output", h + "self_attention.dense"),
            linear(a + "norm_2", h + "post_attention_layernorm"),
            linear(a + "feed_forward.linear_1", h + "mlp.dense_h_to_4h"),
            linear(a + "feed_forward.linear_2", h + "mlp.dense_4h_to_h"),
            linear("encoder.final_norm", "ln_f"),
        ]

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        return self.causal_lm_head_rows(config, variant, "word_embeddings.weight")
