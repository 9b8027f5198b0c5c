"""BART (BartForConditionalGeneration <-> an encoder-decoder lm model), and the layout PEGASUS and Marian
share with it (``BartLikeConverter``): fairseq-style names (``self_attn.q_proj``, ``fc1``,
``encoder_attn``), one ``model.shared`` table for encoder, decoder and the tied ``lm_head``, and a
``final_logits_bias`` buffer added to the logits (our lm ``output_bias``).

BART itself: learned positions, embedding layer norm on both stacks, post-LN, GELU, and the embedding
scale only when config.json says ``scale_embedding``.  Its position tables hold
``max_position_embeddings + 2`` rows because fairseq numbered positions from padding_idx + 1 = 2: position
p of a sequence reads row p + 2 and rows 0 and 1 are never read.  Import keeps rows 2.. as our
``max_seq_length`` (= max_position_embeddings) rows and drops rows 0-1 (with a note when they are not
zero); export writes zeros in rows 0-1.
"""

from typing import Any, Dict, List, Optional

from uer.config import ModelConfig
from uer.convert.converter import Variant, hf_act, uer_act
from uer.convert.registry import CONVERTERS
from uer.convert.seq2seq_converter import Seq2SeqConverter
from uer.convert.seq2seq_transforms import LOGITS_BIAS_ROW, ZERO_LOGITS_BIAS, ComputedSinusoids
from uer.convert.table import Entry, Row, Tied, linear, param
from uer.convert.transforms import POSITION_OFFSET, VOCAB_ROWS
from uer.decoders.transformer import decoder_sizes
from uer.errors import ConfigError


def attention_rows(uer: str, hf: str) -> List[Row]:
    return [linear(f"{uer}.{ours}", f"{hf}.{theirs}_proj")
            for ours, theirs in (("query", "q"), ("key", "k"), ("value", "v"), ("output", "out"))]


class BartLikeConverter(Seq2SeqConverter):
    base_prefix = "model."
    # "learned": BART's offset table; "stored": sinusoids in the file (PEGASUS); "computed": sinusoids
    # transformers recomputes and does not save (Marian; older files may still hold them).
    positions = "learned"
    embedding_norm = True            # layernorm_embedding on both stacks
    layernorm_positioning = "post"
    data_processor = "bart"
    # Options of these config.json files that change the network and that uer does not implement.
    hf_fixed: Dict[str, Any] = {}

    @property
    def embedding_parts(self) -> List[str]:
        return ["word", "pos"] if self.positions == "learned" else ["word", "sinusoidalpos_halves"]

    def position_offset(self, hf: Dict[str, Any]) -> int:
        return 2 if self.positions == "learned" else 0

    # ---------------------------------------------------------------- configs
    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        self.hf_require(hf, self.hf_fixed)
        width = hf["d_model"]
        encoder_ffn, decoder_ffn = hf["encoder_ffn_dim"], hf["decoder_ffn_dim"]
        out = {
            "embedding": self.embedding_parts, "tgt_embedding": self.embedding_parts,
            "remove_embedding_layernorm": not self.embedding_norm,
            "scale_embedding": bool(hf.get("scale_embedding", False)),
            "vocab_size": hf["vocab_size"], "emb_size": width, "hidden_size": width,
            "feedforward_size": encoder_ffn, "decoder_feedforward_size": decoder_ffn,
            "heads_num": hf["encoder_attention_heads"], "decoder_heads_num": hf["decoder_attention_heads"],
            "layers_num": hf["encoder_layers"], "decoder_layers_num": hf["decoder_layers"],
            "max_seq_length": hf["max_position_embeddings"],
            "hidden_act": hf_act(hf.get("activation_function", "gelu")),
            "dropout": hf.get("dropout", 0.1), "attention_dropout": hf.get("attention_dropout", 0.0),
            "layernorm_eps": 1e-5,            # torch.nn.LayerNorm's default, which these models use
            "layernorm": "normal", "layernorm_positioning": self.layernorm_positioning,
            "feed_forward": "dense", "remove_transformer_bias": False, "encoder": "transformer",
            "decoder": "transformer", "mask": "fully_visible", "share_embedding": True,
            "tie_weights": bool(hf.get("tie_word_embeddings", True)), "has_lmtarget_bias": True,
            **self.decoder_start_to_uer(hf),
        }
        out.update(self.targets_config(variant))
        return out

    def check_uer(self, config: ModelConfig) -> None:
        self.require_seq2seq(config, {
            "embedding": self.embedding_parts, "tgt_embedding": self.embedding_parts,
            "remove_embedding_layernorm": not self.embedding_norm, "layernorm": "normal",
            "layernorm_positioning": self.layernorm_positioning, "feed_forward": "dense",
            "remove_transformer_bias": False, "relative_position_embedding": False,
            "remove_attention_scale": False, "scale_tied_output": False})
        if config.attention_head_size not in (0, config.hidden_size // config.heads_num):
            raise ConfigError(f"the uer config: 'attention_head_size' {config.attention_head_size}, but a Hugging "
                              f"Face {self.family} model's heads are d_model / heads wide; choose another --architecture")
        if abs(config.layernorm_eps - 1e-5) > 1e-12:
            raise ConfigError(f"the uer config: 'layernorm_eps' is {config.layernorm_eps}, but Hugging Face "
                              f"{self.family} models use torch's LayerNorm eps 1e-5; choose another --architecture")

    def special_ids(self, config: ModelConfig, special: Optional[Dict[str, int]]) -> Dict[str, Optional[int]]:
        """pad / bos / eos ids for config.json: the vocabulary's where it names them, else the family's."""
        return dict(special or {})

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        self.check_uer(config)
        layers, heads, ffn = decoder_sizes(config)
        return {
            "architectures": [variant.hf_class], "model_type": self.model_type, "vocab_size": config.vocab_size,
            "d_model": config.hidden_size, "encoder_layers": config.layers_num, "decoder_layers": layers,
            "encoder_attention_heads": config.heads_num, "decoder_attention_heads": heads,
            "encoder_ffn_dim": config.feedforward_size, "decoder_ffn_dim": ffn,
            "max_position_embeddings": config.max_seq_length, "activation_function": uer_act(config.hidden_act),
            "dropout": config.dropout, "attention_dropout": config.attention_dropout_prob,
            "activation_dropout": 0.0, "scale_embedding": config.scale_embedding,
            "tie_word_embeddings": config.tie_weights, "is_encoder_decoder": True,
            # uer's generation forces no end token at the length limit; say so, so that transformers'
            # generate() decodes the same way (its BART / Marian defaults force one).
            "forced_eos_token_id": None,
            **self.hf_extra(config), **self.special_ids(config, special),
            "decoder_start_token_id": self.decoder_start_to_hf(config, special),
        }

    def hf_extra(self, config: ModelConfig) -> Dict[str, Any]:
        return {}

    # ---------------------------------------------------------------- table
    def position_rows(self, config: ModelConfig) -> List[Row]:
        stacks = (("embedding", "encoder"), ("tgt_embedding", "decoder"))
        if self.positions == "learned":
            return [param(f"{ours}.pos.embedding.weight", f"{theirs}.embed_positions.weight", POSITION_OFFSET)
                    for ours, theirs in stacks]
        return [Entry((), (f"{theirs}.embed_positions.weight",),
                      ComputedSinusoids(config.max_seq_length, config.hidden_size, f"{theirs}.embed_positions"),
                      optional=self.positions == "computed")
                for _, theirs in stacks]

    def shared_rows(self, config: ModelConfig) -> List[Row]:
        rows: List[Row] = [param("embedding.word.embedding.weight", "shared.weight", VOCAB_ROWS),
                           Tied("encoder.embed_tokens.weight", "shared.weight"),
                           Tied("decoder.embed_tokens.weight", "shared.weight")]
        rows += self.position_rows(config)
        if self.embedding_norm:
            rows += [linear("embedding.norm", "encoder.layernorm_embedding"),
                     linear("tgt_embedding.norm", "decoder.layernorm_embedding")]
        if self.layernorm_positioning == "pre":
            rows += [linear("encoder.final_norm", "encoder.layer_norm"),
                     linear("decoder.final_norm", "decoder.layer_norm")]
        return rows

    def encoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        ours, theirs = "encoder.layers.{i}", "encoder.layers.{i}"
        return attention_rows(f"{ours}.attention", f"{theirs}.self_attn") + [
            linear(f"{ours}.norm_1", f"{theirs}.self_attn_layer_norm"),
            linear(f"{ours}.feed_forward.linear_1", f"{theirs}.fc1"),
            linear(f"{ours}.feed_forward.linear_2", f"{theirs}.fc2"),
            linear(f"{ours}.norm_2", f"{theirs}.final_layer_norm")]

    def decoder_layer_rows(self, config: ModelConfig) -> List[Row]:
        ours, theirs = "decoder.layers.{i}", "decoder.layers.{i}"
        return (attention_rows(f"{ours}.self_attention", f"{theirs}.self_attn")
                + attention_rows(f"{ours}.cross_attention", f"{theirs}.encoder_attn") + [
                    linear(f"{ours}.norm_1", f"{theirs}.self_attn_layer_norm"),
                    linear(f"{ours}.norm_2", f"{theirs}.encoder_attn_layer_norm"),
                    linear(f"{ours}.feed_forward.linear_1", f"{theirs}.fc1"),
                    linear(f"{ours}.feed_forward.linear_2", f"{theirs}.fc2"),
                    linear(f"{ours}.norm_3", f"{theirs}.final_layer_norm")])

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        rows: List[Row] = [param("target.lm.output_bias", "final_logits_bias", LOGITS_BIAS_ROW)
                           if config.has_lmtarget_bias else Entry((), ("final_logits_bias",), ZERO_LOGITS_BIAS)]
        if config.tie_weights:
            rows.append(Tied("lm_head.weight", self.base_prefix + "shared.weight"))
        else:
            rows.append(param("target.lm.output_weight", "lm_head.weight", VOCAB_ROWS))
        return rows


@CONVERTERS.register("bart")
class BartConverter(BartLikeConverter):
    family = "bart"
    model_type = "bart"
    variants = (Variant("BartForConditionalGeneration", "pretrain", ("lm",)),)
    default_decoder_start = 2        # BART starts decoding from </s>
    hf_fixed = {"normalize_before": False, "add_final_layer_norm": False, "normalize_embedding": True,
                "static_position_embeddings": False, "add_bias_logits": False}

    def special_ids(self, config: ModelConfig, special: Optional[Dict[str, int]]) -> Dict[str, Optional[int]]:
        return {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, **(special or {})}

    def default_start_from_special(self, config: ModelConfig, special: Dict[str, int]) -> int:
        return special.get("eos_token_id", 2)


