"""T5 and T5 v1.1 (T5ForConditionalGeneration <-> an encoder-decoder lm model): one ``shared`` table for
both stacks, pre-LN with T5's weight-only RMS norm and a final norm per stack, no biases, no attention
scaling, and relative-position buckets whose table lives in block 0 of each stack
(``block.0.layer.0.SelfAttention.relative_attention_bias``; ours: one ``position`` table per stack).

v1.0: ReLU dense feed-forward (``wi``, ``wo``), ``lm_head`` tied to ``shared`` with the decoder output
scaled by d_model^-0.5 (our ``scale_tied_output``).  v1.1: gated GELU (``wi_0`` gate, ``wi_1``, ``wo``),
its own ``lm_head``, no scaling.

How transformers 5 says which: it always declares the head tied and reads the scaling from
``scale_decoder_outputs`` (older config.json files: ``tie_word_embeddings`` false meant v1.1, i.e. no
scaling); a file whose ``lm_head.weight`` differs from ``shared.weight`` is loaded untied.  So import
takes the scaling from config.json and the tying from the weights; export writes
``scale_decoder_outputs`` and ``tie_word_embeddings`` and, for an untied head, ``lm_head.weight``.
"""

from typing import Any, Dict, List, Optional

import torch

from uer.config import ModelConfig
from uer.convert.converter import Variant, hf_act, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.seq2seq_converter import Seq2SeqConverter
from uer.convert.table import Row, Tied, param
from uer.convert.transforms import VOCAB_ROWS
from uer.decoders.transformer import decoder_sizes
from uer.errors import ConfigError

ATTENTION = (("query", "q"), ("key", "k"), ("value", "v"), ("output", "o"))
# transformers reads "gated-gelu" as its explicit tanh-GELU formula, our gelu_new; our fused kernels
# (gelu_fast, gelu_pytorch_tanh) are written as "gated-gelu_pytorch_tanh", its fused one.


def attention_rows(uer: str, hf: str) -> List[Row]:
    return [param(f"{uer}.{ours}.weight", f"{hf}.{theirs}.weight") for ours, theirs in ATTENTION]


def feed_forward_rows(uer: str, hf: str, gated: bool) -> List[Row]:
    names = (("linear_gate", "wi_0"), ("linear_1", "wi_1"), ("linear_2", "wo")) if gated else \
        (("linear_1", "wi"), ("linear_2", "wo"))
    return [param(f"{uer}.{ours}.weight", f"{hf}.{theirs}.weight") for ours, theirs in names]


def read_feed_forward(proj: str) -> Dict[str, str]:
    """config.json's ``feed_forward_proj`` ("relu", "gated-gelu", "gated-silu" ...) -> our keys."""
    parts = proj.split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise ConfigError(f"config.json: feed_forward_proj '{proj}' is not 'ACT' or 'gated-ACT'")
    gated = len(parts) == 2
    act = "gelu_new" if proj == "gated-gelu" else hf_act(parts[-1])
    return {"feed_forward": "gated" if gated else "dense", "hidden_act": act}


def write_feed_forward(config: ModelConfig) -> str:
    if config.feed_forward == "dense":
        return uer_act(config.hidden_act)
    if config.hidden_act == "gelu_new":
        return "gated-gelu"
    if config.hidden_act == "gelu":
        raise ConfigError("the uer config: a gated feed-forward with the exact (erf) GELU has no T5 spelling "
                          "(transformers reads \"gated-gelu\" as the tanh GELU); set \"hidden_act\": \"gelu_new\" "
                          "if the model was trained with it, or choose another --architecture")
    return "gated-" + uer_act(config.hidden_act)


@CONVERTERS.register("t5")
class T5Converter(Seq2SeqConverter):
    family = "t5"
    model_type = "t5"
    base_prefix = ""
    variants = (Variant("T5ForConditionalGeneration", "pretrain", ("lm",)),)
    # Files from older transformers hold a cross-attention bias table that T5 never uses.
    buffers = (r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$",)
    data_processor = "t5"
    default_decoder_start = 0        # T5 starts decoding from <pad>

    def hf_config_from_weights(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        head, shared = state.get("lm_head.weight"), state.get("shared.weight")
        untied = head is not None and (shared is None or head.shape != shared.shape or not torch.equal(head, shared))
        return {**hf, "_uer_untied_head": untied}

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        scaled = hf.get("scale_decoder_outputs")
        if scaled is None:
            scaled = hf.get("tie_word_embeddings", True) is not False
        tied = not hf.get("_uer_untied_head", False)
        if scaled and not tied:
            raise ConfigError("config.json scales the decoder output by d_model^-0.5 (T5 v1.0: "
                              "scale_decoder_outputs / tie_word_embeddings true), but the weights hold an lm_head "
                              "that differs from shared.weight; uer scales only a tied output layer. Set "
                              "\"scale_decoder_outputs\": false if this is a T5 v1.1-style model")
        width = hf["d_model"]
        decoder_layers = hf.get("num_decoder_layers") or hf["num_layers"]
        out = {
            "embedding": ["word"], "tgt_embedding": ["word"], "remove_embedding_layernorm": True,
            "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": hf["d_ff"], "heads_num": hf["num_heads"], "attention_head_size": hf["d_kv"],
            "layers_num": hf["num_layers"], "decoder_layers_num": decoder_layers,
            # T5 has no position limit of its own; older config.json files say n_positions.
            "max_seq_length": int(hf.get("n_positions") or 512),
            **read_feed_forward(hf.get("feed_forward_proj", "relu")),
            "dropout": hf.get("dropout_rate", 0.1), "layernorm": "t5",
            "layernorm_eps": hf.get("layer_norm_epsilon", 1e-6), "layernorm_positioning": "pre",
            "remove_transformer_bias": True, "relative_position_embedding": True,
            "relative_attention_buckets_num": hf.get("relative_attention_num_buckets", 32),
            "relative_attention_max_distance": hf.get("relative_attention_max_distance", 128),
            "remove_attention_scale": True, "encoder": "transformer", "decoder": "transformer",
            "mask": "fully_visible", "share_embedding": True, "tie_weights": tied,
            "scale_tied_output": bool(scaled and tied), "has_lmtarget_bias": False,
            # Only decides a model built from this config without the weights (pretraining from scratch).
            "init": "t5",
            **self.decoder_start_to_uer(hf),
        }
        out.update(self.targets_config(variant))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require_seq2seq(config, {
            "embedding": ["word"], "tgt_embedding": ["word"], "remove_embedding_layernorm": True,
            "scale_embedding": False, "layernorm": "t5", "layernorm_positioning": "pre",
            "remove_transformer_bias": True, "relative_position_embedding": True, "remove_attention_scale": True,
            "has_lmtarget_bias": False})
        layers, heads, ffn = decoder_sizes(config)
        if heads != config.heads_num or ffn != config.feedforward_size:
            raise ConfigError("the uer config: the decoder's heads_num / feedforward_size differ from the encoder's "
                              "(decoder_heads_num / decoder_feedforward_size), which a Hugging Face T5 model cannot "
                              "express; choose another --architecture")

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        special = special or {}
        return {
            "architectures": [variant.hf_class], "model_type": self.model_type, "vocab_size": config.vocab_size,
            "d_model": config.hidden_size, "d_kv": config.head_size, "d_ff": config.feedforward_size,
            "num_layers": config.layers_num, "num_decoder_layers": decoder_sizes(config)[0],
            "num_heads": config.heads_num, "relative_attention_num_buckets": config.relative_attention_buckets_num,
            "relative_attention_max_distance": config.relative_attention_max_distance,
            "dropout_rate": config.dropout, "layer_norm_epsilon": config.layernorm_eps,
            "feed_forward_proj": write_feed_forward(config), "is_encoder_decoder": True,
            "tie_word_embeddings": config.tie_weights,
            "scale_decoder_outputs": bool(config.scale_tied_output and config.tie_weights),
            "n_positions": config.max_seq_length,
            "pad_token_id": special.get("pad_token_id", 0), "eos_token_id": special.get("eos_token_id", 1),
            "decoder_start_token_id": self.decoder_start_to_hf(config, special),
        }

    def default_start_from_special(self, config: ModelConfig, special: Dict[str, int]) -> int:
        return special.get("pad_token_id", 0)

    # ---------------------------------------------------------------- table
    def shared_rows(self, config: ModelConfig) -> List[Row]:
        return [param("embedding.word.embedding.weight", "shared.weight", VOCAB_ROWS),
                Tied("encoder.embed_tokens.weight", "shared.weight"),
                Tied("decoder.embed_tokens.weight", "shared.weight"),
                param("encoder.position.embedding.weight",
                      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
                param("decoder.position.embedding.weight",
                      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
                param("encoder.final_norm.weight", "encoder.final_layer_norm.weight"),
                param("decoder.final_norm.weight", "decoder.final_layer_norm.weight")]

    def encoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        ours, theirs = "encoder.layers.{i}", "encoder.block.{i}.layer"
        gated = config.feed_forward == "gated"
        return (attention_rows(f"{ours}.attention", f"{theirs}.0.SelfAttention")
                + feed_forward_rows(f"{ours}.feed_forward", f"{theirs}.1.DenseReluDense", gated)
                + [param(f"{ours}.norm_1.weight", f"{theirs}.0.layer_norm.weight"),
                   param(f"{ours}.norm_2.weight", f"{theirs}.1.layer_norm.weight")])

    def decoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        ours, theirs = "decoder.layers.{i}", "decoder.block.{i}.layer"
        gated = config.feed_forward == "gated"
        return (attention_rows(f"{ours}.self_attention", f"{theirs}.0.SelfAttention")
                + attention_rows(f"{ours}.cross_attention", f"{theirs}.1.EncDecAttention")
                + feed_forward_rows(f"{ours}.feed_forward", f"{theirs}.2.DenseReluDense", gated)
                + [param(f"{ours}.norm_{j + 1}.weight", f"{theirs}.{j}.layer_norm.weight") for j in range(3)])

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        if config.tie_weights:
            return [Tied("lm_head.weight", "shared.weight")]
        return [param("target.lm.output_weight", "lm_head.weight", VOCAB_ROWS)]
