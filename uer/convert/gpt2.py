"""GPT-2 (GPT2LMHeadModel <-> lm model, GPT2Model <-> embedding + encoder): pre-LN with a final norm,
tanh GELU, learned positions, no embedding norm, the LM head tied to the token embedding.  Its
Conv1D layers store (in, out) matrices (transposed here) and q/k/v live in one fused ``c_attn``
(split here, merged back on export)."""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant, hf_act, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Entry, Row, linear, param
from uer.convert.transforms import IDENTITY, QKV_BIAS, QKV_WEIGHT, TRANSPOSE, VOCAB_ROWS

GPT2_SHAPE = {"encoder": "transformer", "layernorm_positioning": "pre", "layernorm": "normal",
              "feed_forward": "dense", "remove_transformer_bias": False, "mask": "causal",
              "remove_embedding_layernorm": True, "parameter_sharing": False,
              "factorized_embedding_parameterization": False, "embedding": ["word", "pos"],
              "attention_head_size": 0}


def conv1d(uer: str, hf: str) -> List[Entry]:
    return [param(uer + ".weight", hf + ".weight", TRANSPOSE), param(uer + ".bias", hf + ".bias", IDENTITY)]


@CONVERTERS.register("gpt2")
class Gpt2Converter(Converter):
    family = "gpt2"
    model_type = "gpt2"
    base_prefix = "transformer."
    variants = (
        Variant("GPT2LMHeadModel", "pretrain", ("lm",)),
        Variant("GPT2Model", "backbone", prefixed=False),
    )
    # Older files hold the causal-mask buffers; uer builds its mask from the config.
    buffers = (r"(^|\.)attn\.bias$", r"(^|\.)attn\.masked_bias$")
    default_targets = ("lm",)
    data_processor = "lm"

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.hf_require(hf, {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                             "add_cross_attention": False})
        width = hf["n_embd"]
        out = {
            "embedding": ["word", "pos"], "remove_embedding_layernorm": True,
            "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": hf.get("n_inner") or 4 * width, "heads_num": hf["n_head"],
            "layers_num": hf["n_layer"], "max_seq_length": hf["n_positions"],
            "hidden_act": hf_act(hf.get("activation_function", "gelu_new")),
            "dropout": hf.get("resid_pdrop", 0.1), "attention_dropout": hf.get("attn_pdrop", 0.1),
            "layernorm_eps": hf.get("layer_norm_epsilon", 1e-5), "encoder": "transformer",
            "mask": "causal", "layernorm_positioning": "pre",
            "tie_weights": bool(hf.get("tie_word_embeddings", True)), "has_lmtarget_bias": False,
        }
        out.update(self.targets_config(variant))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require(config, {**GPT2_SHAPE, "emb_size": config.hidden_size})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        if variant.kind == "pretrain":
            self.require(config, {"has_lmtarget_bias": False})
        return {
            "architectures": [variant.hf_class], "model_type": self.model_type,
            "vocab_size": config.vocab_size, "n_embd": config.hidden_size, "n_layer": config.layers_num,
            "n_head": config.heads_num, "n_inner": config.feedforward_size, "n_positions": config.max_seq_length,
            "activation_function": uer_act(config.hidden_act), "resid_pdrop": config.dropout,
            "embd_pdrop": config.dropout, "attn_pdrop": config.attention_dropout_prob,
            "layer_norm_epsilon": config.layernorm_eps, "scale_attn_weights": True,
            "tie_word_embeddings": config.tie_weights, **(special or {}),
        }

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        h, a = "h.{i}.", "encoder.layers.{i}."
        attn = a + "attention."
        return [
            param("embedding.word.embedding.weight", "wte.weight", VOCAB_ROWS),
            param("embedding.pos.embedding.weight", "wpe.weight"),
            linear(a + "norm_1", h + "ln_1"),
            Entry(tuple(attn + p + ".weight" for p in ("query", "key", "value")), (h + "attn.c_attn.weight",),
                  QKV_WEIGHT),
            Entry(tuple(attn + p + ".bias" for p in ("query", "key", "value")), (h + "attn.c_attn.bias",),
                  QKV_BIAS),
            *conv1d(attn + "output", h + "attn.c_proj"),
            linear(a + "norm_2", h + "ln_2"),
            *conv1d(a + "feed_forward.linear_1", h + "mlp.c_fc"),
            *conv1d(a + "feed_forward.linear_2", h + "mlp.c_proj"),
            linear("encoder.final_norm", "ln_f"),
        ]

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        return self.causal_lm_head_rows(config, variant, "wte.weight")
