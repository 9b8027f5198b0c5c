"""LLaMA, Mistral and Qwen2 (``*ForCausalLM`` <-> lm model, ``*Model`` <-> embedding + encoder): pre-norm
RMSNorm decoders with a final norm, rotary positions (Hugging Face's rotate-half layout, so q/k rows are
copied as they are), grouped-query attention, a SwiGLU feed-forward (``gate_proj`` is our ``linear_gate``,
``up_proj`` our ``linear_1``, ``down_proj`` our ``linear_2``), no biases except Qwen2's on q/k/v, and an
``lm_head`` tied to the token embedding or not (``tie_word_embeddings``).

Rotary settings: transformers 4 writes ``rope_theta`` and ``rope_scaling``, transformers 5
``rope_parameters``; import reads either, export writes the first pair (which both versions read).
Scalings uer implements: linear, dynamic, llama3; others (yarn, longrope ...) are refused.

Sliding windows (``sliding_window``: a query sees itself and the window - 1 tokens before it) map to our
``sliding_window``: Mistral's on every layer, Qwen2's (``use_sliding_window``) on layers
``max_window_layers`` and up, our ``sliding_window_from_layer``.  LLaMA has none.
"""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.converter import Converter, Variant, hf_act, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.table import Row, param
from uer.convert.transforms import VOCAB_ROWS
from uer.errors import ConfigError

ATTENTION = (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "o_proj"))
FEED_FORWARD = (("linear_gate", "gate_proj"), ("linear_1", "up_proj"), ("linear_2", "down_proj"))
# Hugging Face rope types -> ours ("default" is none).
ROPE_TYPES = {"default": "", "linear": "linear", "dynamic": "dynamic", "llama3": "llama3"}
# The uer settings every model of these families has.
DECODER_SHAPE = {"encoder": "transformer", "layernorm_positioning": "pre", "layernorm": "rms", "feed_forward": "gated",
                 "remove_transformer_bias": True, "mask": "causal", "remove_embedding_layernorm": True,
                 "parameter_sharing": False, "factorized_embedding_parameterization": False, "embedding": ["word"],
                 "rotary_position_embedding": True, "alibi_position_embedding": False,
                 "relative_position_embedding": False, "scale_embedding": False}


def read_rope(hf: Dict[str, Any]) -> Dict[str, Any]:
    """``rope_theta`` / ``rope_scaling`` (transformers 4) or ``rope_parameters`` (5) -> our keys."""
    params = hf.get("rope_parameters") if isinstance(hf.get("rope_parameters"), dict) else {}
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling") if isinstance(hf.get("rope_scaling"), dict) else params
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    if kind not in ROPE_TYPES:
        raise ConfigError(f"config.json: rope type '{kind}' is not one uer implements ({', '.join(ROPE_TYPES)}); "
                          "this checkpoint cannot be converted")
    out: Dict[str, Any] = {"rotary_position_embedding": True, "rope_theta": float(theta)}
    if ROPE_TYPES[kind]:
        rope = {"type": ROPE_TYPES[kind], "factor": float(scaling.get("factor", 1.0))}
        if kind == "llama3":
            rope.update(low_freq_factor=float(scaling.get("low_freq_factor", 1.0)),
                        high_freq_factor=float(scaling.get("high_freq_factor", 4.0)),
                        original_max_position_embeddings=int(scaling["original_max_position_embeddings"]))
        elif scaling.get("original_max_position_embeddings"):
            rope["original_max_position_embeddings"] = int(scaling["original_max_position_embeddings"])
        out["rope_scaling"] = rope
    return out


def write_rope(config: ModelConfig) -> Dict[str, Any]:
    s = config.rope_scaling
    out: Dict[str, Any] = {"rope_theta": config.rope_theta, "rope_scaling": None}
    if s.type == "ntk":
        raise ConfigError("the uer config: rope_scaling.type 'ntk' (static NTK) has no Hugging Face rope type; "
                          "choose another --architecture or another scaling")
    if s.type:
        scaling: Dict[str, Any] = {"rope_type": s.type, "factor": s.factor}
        if s.type == "llama3":
            scaling.update(low_freq_factor=s.low_freq_factor, high_freq_factor=s.high_freq_factor)
        if s.original_max_position_embeddings:
            scaling["original_max_position_embeddings"] = s.original_max_position_embeddings
        out["rope_scaling"] = scaling
    return out


class LlamaFamilyConverter(Converter):
    base_prefix = "model."
    default_targets = ("lm",)
    data_processor = "lm"
    buffers = (r"(^|\.)rotary_emb\.inv_freq$",)     # older files saved the frequency table
    qkv_bias = False                                 # Qwen2: q/k/v keep biases

    def hf_checks(self, hf: Dict[str, Any]) -> None:
        """Refuse the config.json options uer does not implement."""
        self.hf_require(hf, {"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.hf_checks(hf)
        width, heads = hf["hidden_size"], hf["num_attention_heads"]
        kv_heads = hf.get("num_key_value_heads") or heads
        head_dim = hf.get("head_dim") or width // heads
        out = {
            **DECODER_SHAPE, "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": hf["intermediate_size"], "heads_num": heads,
            "kv_heads_num": 0 if kv_heads == heads else kv_heads,
            "attention_head_size": 0 if head_dim * heads == width else head_dim,
            "layers_num": hf["num_hidden_layers"], "max_seq_length": hf["max_position_embeddings"],
            "hidden_act": hf_act(hf.get("hidden_act", "silu")), "dropout": 0.0,
            "attention_dropout": float(hf.get("attention_dropout", 0.0)),
            "layernorm_eps": hf.get("rms_norm_eps", 1e-6), "attention_qkv_bias": self.qkv_bias,
            "tie_weights": bool(hf.get("tie_word_embeddings", False)), "has_lmtarget_bias": False,
            **read_rope(hf), **self.window_to_uer(hf),
        }
        out.update(self.targets_config(variant))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require(config, {**DECODER_SHAPE, "emb_size": config.hidden_size, "attention_qkv_bias": self.qkv_bias})
        self.check_window(config)

    def window_to_uer(self, hf: Dict[str, Any]) -> Dict[str, Any]:
        """config.json's sliding window -> our keys (LLaMA: none)."""
        return {}

    def check_window(self, config: ModelConfig) -> None:
        """Refuse a sliding window the family cannot express (LLaMA: any)."""
        self.require(config, {"sliding_window": 0})

    def head_dim_hf(self, config: ModelConfig) -> Dict[str, Any]:
        return {"head_dim": config.head_size}

    def extra_hf(self, config: ModelConfig) -> Dict[str, Any]:
        """Family-specific config.json keys."""
        return {"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1}

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        if variant.kind == "pretrain":
            self.require(config, {"has_lmtarget_bias": False})
        return {
            "architectures": [variant.hf_class], "model_type": self.model_type, "vocab_size": config.vocab_size,
            "hidden_size": config.hidden_size, "intermediate_size": config.feedforward_size,
            "num_hidden_layers": config.layers_num, "num_attention_heads": config.heads_num,
            "num_key_value_heads": config.kv_heads, **self.head_dim_hf(config),
            "hidden_act": uer_act(config.hidden_act), "max_position_embeddings": config.max_seq_length,
            "rms_norm_eps": config.layernorm_eps, "attention_dropout": config.attention_dropout_prob,
            "tie_word_embeddings": config.tie_weights, **write_rope(config), **self.extra_hf(config),
            **(special or {}),
        }

    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        h, a = "layers.{i}.", "encoder.layers.{i}."
        rows: List[Row] = [param("embedding.word.embedding.weight", "embed_tokens.weight", VOCAB_ROWS),
                           param(a + "norm_1.weight", h + "input_layernorm.weight")]
        rows += [param(f"{a}attention.{ours}.weight", f"{h}self_attn.{theirs}.weight") for ours, theirs in ATTENTION]
        if self.qkv_bias:
            rows += [param(f"{a}attention.{ours}.bias", f"{h}self_attn.{theirs}.bias") for ours, theirs in ATTENTION[:3]]
        rows.append(param(a + "norm_2.weight", h + "post_attention_layernorm.weight"))
        rows += [param(f"{a}feed_forward.{ours}.weight", f"{h}mlp.{theirs}.weight") for ours, theirs in FEED_FORWARD]
        rows.append(param("encoder.final_norm.weight", "norm.weight"))
        return rows

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        return self.causal_lm_head_rows(config, variant, "embed_tokens.weight")


@CONVERTERS.register("llama")
class LlamaConverter(LlamaFamilyConverter):
    family = "llama"
    model_type = "llama"
    variants = (Variant("LlamaForCausalLM", "pretrain", ("lm",)), Variant("LlamaModel", "backbone", prefixed=False))


@CONVERTERS.register("mistral")
class MistralConverter(LlamaFamilyConverter):
    """Mistral is LLaMA with grouped-query attention and, in v0.1, a sliding attention window on every layer
    (v0.2 and later: ``sliding_window`` null, the whole context)."""
    family = "mistral"
    model_type = "mistral"
    variants = (Variant("MistralForCausalLM", "pretrain", ("lm",)),
                Variant("MistralModel", "backbone", prefixed=False))

    def hf_checks(self, hf: Dict[str, Any]) -> None:
        super().hf_checks(hf)
        if hf.get("layer_types"):
            raise ConfigError("config.json: 'layer_types' mixes attention kinds per layer, which MistralForCausalLM "
                              "itself ignores (transformers points to Ministral); this checkpoint cannot be converted "
                              "as a Mistral model")

    def window_to_uer(self, hf: Dict[str, Any]) -> Dict[str, Any]:
        # transformers' MistralConfig defaults to 4096 when the key is absent; null means no window.
        window = hf.get("sliding_window", 4096)
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ConfigError(f"config.json: 'sliding_window' must be a number of tokens >= 1 or null, got {window!r}")
        return {"sliding_window": window or 0}

    def check_window(self, config: ModelConfig) -> None:
        self.require(config, {"sliding_window_from_layer": 0})

    def extra_hf(self, config: ModelConfig) -> Dict[str, Any]:
        return {"sliding_window": config.sliding_window or None}


@CONVERTERS.register("qwen2")
class Qwen2Converter(LlamaFamilyConverter):
    """Qwen2: LLaMA with biases on the q/k/v projections (not on the output projection)."""
    family = "qwen2"
    model_type = "qwen2"
    variants = (Variant("Qwen2ForCausalLM", "pretrain", ("lm",)), Variant("Qwen2Model", "backbone", prefixed=False))
    qkv_bias = True

    def window_to_uer(self, hf: Dict[str, Any]) -> Dict[str, Any]:
        """transformers' Qwen2 windows the layers its ``layer_types`` names (config.json may list them); without
        the list, layers max_window_layers and up when use_sliding_window is true.  uer expresses a window on
        every layer from one index on."""
        layers = hf["num_hidden_layers"]
        window = hf.get("sliding_window", 4096) if hf.get("use_sliding_window") else None
        listed = hf.get("layer_types")
        if listed is not None:
            if len(listed) != layers or any(kind not in ("sliding_attention", "full_attention") for kind in listed):
                raise ConfigError(f"config.json: 'layer_types' {listed} must name 'sliding_attention' or "
                                  f"'full_attention' for each of the {layers} layers")
            windowed = [i for i, kind in enumerate(listed) if kind == "sliding_attention"]
            if windowed and window is None:
                raise ConfigError("config.json: 'layer_types' names sliding_attention layers but use_sliding_window "
                                  "is false (transformers has no window to apply); this checkpoint cannot be converted")
        else:
            first = int(hf.get("max_window_layers", 28))
            windowed = [i for i in range(layers) if window is not None and i >= first]
        if not windowed:
            return {"sliding_window": 0}
        if windowed != list(range(windowed[0], layers)):
            raise ConfigError(f"config.json: 'layer_types' {listed} windows layers {windowed}; uer expresses a window "
                              "on every layer from one index on only, so this checkpoint cannot be converted")
        if not isinstance(window, int) or window < 1:
            raise ConfigError(f"config.json: 'sliding_window' must be a number of tokens >= 1, got {window!r}")
        return {"sliding_window": window, "sliding_window_from_layer": windowed[0]}

    def check_window(self, config: ModelConfig) -> None:
        pass        # every window uer has, Qwen2 expresses

    def head_dim_hf(self, config: ModelConfig) -> Dict[str, Any]:
        if config.head_size * config.heads_num != config.hidden_size:     # Qwen2 has no head_dim key
            raise ConfigError(f"the uer config: attention_head_size {config.head_size} x heads_num {config.heads_num} "
                              f"is not hidden_size {config.hidden_size}, which a Hugging Face Qwen2 model cannot "
                              "express; choose another --architecture (llama)")
        return {}

    def extra_hf(self, config: ModelConfig) -> Dict[str, Any]:
        window, first = config.sliding_window, config.sliding_window_from_layer
        kinds = ["sliding_attention" if window and i >= first else "full_attention" for i in range(config.layers_num)]
        return {"use_sliding_window": bool(window), "sliding_window": window or None,
                "max_window_layers": first if window else config.layers_num, "layer_types": kinds}
