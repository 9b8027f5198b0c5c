"""UER-py / TencentPretrain checkpoints <-> uer: their config keys and their parameter names.

UER-py is modular like uer, so one table, built from the config, covers every architecture both
toolkits share today: BERT / RoBERTa (word + pos + seg, post-LN, mlm / sp targets), ALBERT (factorised
embedding, one shared layer, sop = sp), GPT-2 (word + pos, pre-LN with a final norm, causal, lm) and
T5 (word only, pre-LN with T5's RMS norm, no biases, unscaled attention with relative-position
buckets, an encoder-decoder with a cross-attending decoder and an lm target over the decoder).
The table is data (``uer/convert/table.py``), read in both directions:

    ours                                    UER-py
    embedding.word.embedding.weight         embedding.word.embedding.weight    (their rows unpadded)
    embedding.norm.weight / .bias           embedding.layer_norm.gamma / .beta
    encoder.layers.{i}.attention.query      encoder.transformer.{i}.self_attn.linear_layers.0  (key 1, value 2)
    encoder.layers.{i}.attention.output     encoder.transformer.{i}.self_attn.final_linear
    encoder.layers.{i}.norm_1 / norm_2      encoder.transformer.{i}.layer_norm_1 / layer_norm_2
    encoder.final_norm                      encoder.layer_norm                 (pre-LN)
    encoder.position.embedding.weight       encoder.relative_pos_emb.relative_attention_bias.weight
    tgt_embedding.*                         tgt_embedding.*  (the word table: a copy of the encoder's when shared)
    decoder.layers.{i}.self_attention       decoder.transformer_decoder.{i}.self_attn
    decoder.layers.{i}.cross_attention      decoder.transformer_decoder.{i}.context_attn
    decoder.layers.{i}.norm_1 / _2 / _3     decoder.transformer_decoder.{i}.layer_norm_1 / _2 / _3
    decoder.final_norm                      decoder.layer_norm                 (pre-LN)
    decoder.position.embedding.weight       decoder.self_pos_emb.relative_attention_bias.weight
    target.mlm.output_weight / _bias        target.mlm.linear_2.weight / .bias (weight = the word table when tied)
    target.lm.output_weight                 target.lm.output_layer.weight      (ditto)

Their norms are UER-py's own LayerNorm (unbiased std, eps on the std), which the imported config
selects as ``"layernorm": "uer_py"``; their ``"layernorm": "t5"`` is T5's RMS norm (weight only),
ours ``"t5"``.  UER-py's encoder-decoder quirk: ``tie_weights`` ties the output layer to the decoder's
own word table *before* ``share_embedding`` replaces that table by the encoder's, so a shared T5's
output layer is a separate matrix (imported as ``"tie_weights": false``).

TencentPretrain's LLaMA configs (rotary positions, ``local_kv_heads_num``, ``"layernorm": "rms"``, eps
``layernorm_eps``, default 1e-6) use the same names; only the q / k rows are re-ordered per head
between their interleaved rotary pairs and our rotate-half ones, and its BLOOM configs import as its
code runs them (no ALiBi): see ``uer/convert/uer_py_llm.py``.  UER-py's ``sinusoidalpos`` (PEGASUS,
Transformer) is our ``sinusoidalpos_uer_py`` table, with word embeddings x sqrt(emb_size) as theirs.
A separate target vocabulary (``data_processor`` mt with ``--tgt_vocab_path``) is read from the size of
the decoder's word table and becomes ``tgt_vocab_size``.
"""

import dataclasses
import json
import os
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence

import torch

from uer.config import ModelConfig, config_from_dict
from uer.convert import table, uer_py_llm
from uer.convert.converter import Variant
from uer.convert.table import Entry, Row, Tied, linear, param, per_layer
from uer.convert.transforms import IDENTITY, VOCAB_ROWS, Sizes, Transform
from uer.errors import CheckpointError, ConfigError

FAMILY = "uer_py"
WORD = "embedding.word.embedding.weight"

# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------

# Keys with the same name and meaning in both toolkits, and UER-py's value when a config omits one
# (uer/opts.py + pretrain.py at commit 5743050; TencentPretrain's layernorm_eps).  None: UER-py has no
# default (its model builder fails without the key), so neither do we.
UER_PY_MODEL_KEYS: Dict[str, Any] = {
    "emb_size": None, "hidden_size": None, "feedforward_size": None, "heads_num": None,
    "layers_num": None, "hidden_act": None,
    "max_seq_length": 512, "dropout": 0.1, "embedding": ["word"], "encoder": "transformer",
    "mask": "fully_visible", "layernorm_positioning": "post", "feed_forward": "dense",
    "layernorm": "normal", "layernorm_eps": 1e-6, "remove_embedding_layernorm": False,
    "factorized_embedding_parameterization": False, "remove_transformer_bias": False,
    "parameter_sharing": False, "target": ["mlm"], "tie_weights": False, "has_lmtarget_bias": False,
    "pooling": "first", "attention_head_size": 0, "data_processor": "",
    # T5-style options and the decoder side (their decoder_layers_num has no default: a decoder needs it)
    "relative_position_embedding": False, "relative_attention_buckets_num": 32, "remove_attention_scale": False,
    "decoder": "", "tgt_embedding": ["word"], "decoder_layers_num": None, "share_embedding": False,
    # TencentPretrain's LLaMA options (tencentpretrain/opts.py; local_kv_heads_num unset = heads_num)
    "rotary_position_embedding": False, "local_kv_heads_num": 0, "alibi_position_embedding": False,
}
# Only meaningful with a decoder (UER-py builds no tgt_embedding / decoder without "decoder").
DECODER_KEYS = ("tgt_embedding", "decoder_layers_num", "share_embedding")
# TencentPretrain-only keys: exported only when set (uer_py_llm.export_checks), so UER-py configs stay clean.
LLM_KEYS = ("rotary_position_embedding", "local_kv_heads_num", "alibi_position_embedding")

# Options of architectures uer does not have yet: a true value is refused, naming the feature.
REFUSED_WHEN_SET = {
    "has_residual_attention": "residual attention (RealFormer) is not implemented in uer",
    "is_moe": "mixture-of-experts layers are not implemented in uer",
}

# Keys of a UER-py config (or of its resolved arguments) that do not change the model's weights or
# what it computes: training, data and tokenizer options, and settings of features that are off.
IGNORED_KEYS = {
    "accumulation_steps", "backend", "batch_size", "bidirectional", "config_path", "dataset_path",
    "deep_init", "dist_train", "do_lower_case", "gpu_ranks", "instances_buffer_size", "labels_num",
    "learning_rate", "log_file_level", "log_level", "log_path", "lr_decay", "master_ip", "merges_path",
    "optimizer", "output_model_path", "prefix_lm_loss", "pretrained_model_path",
    "report_steps", "save_checkpoint_steps", "scheduler", "seed",
    "single_gpu", "span_geo_prob", "span_masking", "span_max_length",
    "spm_model_path", "tgt_do_lower_case", "tgt_merges_path", "tgt_spm_model_path",
    "tgt_tokenizer", "tgt_vocab_path", "tokenizer", "total_steps", "vocab", "vocab_path", "warmup",
    "whole_word_masking", "world_size", "seq_length", "tgt_seq_length", "fp16", "fp16_opt_level",
    "deepspeed", "deepspeed_config", "activation_checkpointing",
    "dynamic_masking", "full_sentences", "dup_factor", "short_seq_prob", "processes_num",
    "docs_buffer_size", "epochs_num", "warmup_steps",
    # TencentPretrain's BLOOM configs: never reaches its attention (uer/convert/uer_py_llm.py)
    "layer_number_scale",
}

SUPPORTED = {"embedding": ("word", "pos", "seg", "sinusoidalpos"), "tgt_embedding": ("word", "pos", "seg", "sinusoidalpos"),
             "encoder": ("transformer",), "decoder": ("transformer",), "target": ("mlm", "sp", "lm"),
             "hidden_act": ("gelu", "gelu_fast", "relu", "silu"), "layernorm": ("normal", "t5", "rms")}
WHY_NOT = {
    "embedding": "UER-py's 'dual' and speech/image embeddings are not converted",
    "tgt_embedding": "UER-py's 'dual' target embeddings are not converted",
    "decoder": "UER-py has only the 'transformer' decoder",
    "encoder": "UER-py's rnn / lstm / gru / gatedcnn / dual encoders do not exist in uer",
    "target": "UER-py's bilm / cls targets are not converted",
    "hidden_act": "UER-py's 'linear' activation has no uer equivalent",
    "layernorm": "UER-py / TencentPretrain have no other norm",
}


def read_uer_py_config(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"UER-py config {path} does not exist (--input_config_path): pass the JSON file "
                          "the model was trained with (its --config_path, e.g. models/bert/base_config.json)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"UER-py config {path}: not valid JSON ({e}); fix the syntax")
    if not isinstance(data, dict):
        raise ConfigError(f"UER-py config {path}: must be a JSON object of keys, got {type(data).__name__}")
    return data


def _as_list(value):
    return [value] if isinstance(value, str) else value


def uer_py_config_to_uer(data: Dict[str, Any], vocab_size: int, source: str,
                         notes: Optional[List[str]] = None, tgt_vocab_size: int = 0) -> ModelConfig:
    """A UER-py / TencentPretrain model config (``source`` names the file) -> our config, with UER-py's
    defaults for the omitted keys.  Unknown keys and unsupported architectures fail naming the key."""
    import difflib
    notes = notes if notes is not None else []
    out: Dict[str, Any] = {}
    known = set(UER_PY_MODEL_KEYS) | set(REFUSED_WHEN_SET) | IGNORED_KEYS
    for key, value in data.items():
        where = f"{source}, key '{key}'"
        if key in REFUSED_WHEN_SET:
            if value:
                raise ConfigError(f"{where} is {value!r}: {REFUSED_WHEN_SET[key]}; this UER-py checkpoint "
                                  "cannot be converted")
            continue
        if key in IGNORED_KEYS:
            continue
        if key not in UER_PY_MODEL_KEYS:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: not a UER-py / TencentPretrain model config key.{hint} Fix or "
                              "remove it (UER-py ignores unknown keys silently; uer does not)")
        out[key] = value
    has_decoder = bool(out.get("decoder"))
    for key, default in UER_PY_MODEL_KEYS.items():
        if key in DECODER_KEYS and not has_decoder:
            out.pop(key, None)           # UER-py reads them only when it builds a decoder
            continue
        if key not in out:
            if default is None:
                raise ConfigError(f"{source}: key '{key}' is missing; UER-py has no default for it either "
                                  "(its model builder needs it), so add the value the model was trained with")
            out[key] = default
    if out.get("data_processor") is None:
        out["data_processor"] = ""
    out["decoder"] = out["decoder"] or ""
    # Legacy single strings ("word_pos_seg", target "bert") are read by config_from_dict; check names after.
    from uer.config import normalize_legacy
    out = normalize_legacy(out)
    for key, allowed in SUPPORTED.items():
        if key not in out or (key == "decoder" and not has_decoder):
            continue
        values = _as_list(out[key])
        bad = [v for v in (values if isinstance(values, list) else [values]) if v not in allowed]
        if bad:
            raise ConfigError(f"{source}, key '{key}': {bad[0]!r} cannot be converted ({WHY_NOT[key]}); "
                              f"supported: {', '.join(allowed)}")
    _check_norms(out, _as_list(out["target"]), source)
    # UER-py's "normal" is its own LayerNorm (unbiased std); its "t5" is T5's RMS norm, our "t5" (eps 1e-6);
    # TencentPretrain's "rms" (LLaMA) is ours too, with eps = layernorm_eps (their default 1e-6, not HF's 1e-5).
    out["layernorm"] = out["layernorm"] if out["layernorm"] in ("t5", "rms") else "uer_py"
    uer_py_llm.import_options(out, source, notes)
    if out["relative_position_embedding"] and not out["remove_attention_scale"]:
        raise ConfigError(f"{source}, key 'remove_attention_scale': false together with "
                          "\"relative_position_embedding\": true cannot be converted: UER-py adds the relative "
                          "position bias to q.k *before* dividing by sqrt(head size), uer (like T5, which never "
                          "scales) adds it after; UER-py's T5 configs set \"remove_attention_scale\": true")
    if has_decoder and out["share_embedding"]:
        # UER-py ties target.lm.output_layer to the decoder's own word table first, and only then replaces
        # that table by the encoder's: with share_embedding the output layer is always its own matrix.
        if out["tie_weights"]:
            notes.append("tie_weights with share_embedding: UER-py ties the output layer to the decoder's word "
                         "table before share_embedding replaces that table, so the output layer is a separate "
                         "matrix; imported as \"tie_weights\": false")
        out["tie_weights"] = False
    if out["attention_head_size"] and out["attention_head_size"] * out["heads_num"] == out["hidden_size"]:
        out["attention_head_size"] = 0
    out["vocab_size"] = vocab_size
    if has_decoder and tgt_vocab_size and tgt_vocab_size != vocab_size:
        out["tgt_vocab_size"] = tgt_vocab_size        # UER-py's --tgt_vocab_path (data_processor mt)
    return config_from_dict(out, f"{source} (a UER-py config)")


def _check_norms(out: Dict[str, Any], targets: List[str], source: str) -> None:
    """UER-py's "layernorm": "t5" changes the transformer's norms only: the embedding's and the mlm head's
    stay UER-py's LayerNorm (so do TencentPretrain's with "rms").  uer has one norm kind per model, so
    only configs without those convert."""
    if out["layernorm"] not in ("t5", "rms"):
        return
    if not out["remove_embedding_layernorm"] or "mlm" in targets:
        where = "'remove_embedding_layernorm' is false" if not out["remove_embedding_layernorm"] else \
            "target 'mlm' has its own norm"
        raise ConfigError(f"{source}, key 'layernorm': {out['layernorm']!r} gives UER-py's transformer layers an RMS norm but "
                          f"keeps its LayerNorm in the embedding and the mlm head, and here {where}; uer has "
                          "one norm kind per model, so this mix cannot be converted (UER-py's T5 configs set "
                          "\"remove_embedding_layernorm\": true with target [\"lm\"])")


def uer_config_to_uer_py(config: ModelConfig, source: str = "the uer config") -> Dict[str, Any]:
    """Our config -> the UER-py config.json that builds the same model; refused (naming the key) where
    UER-py would compute something else."""
    t5_norm = config.layernorm in ("t5", "rms")       # one RMS norm here, UER-py's T5LayerNorm there
    norm_kind = config.layernorm if t5_norm else "uer_py"
    extra = uer_py_llm.export_checks(config, source)
    # LLaMA-style models exist only in TencentPretrain: its "rms" norm reads layernorm_eps; elsewhere write
    # "t5", which both toolkits have (UER-py's is fixed at eps 1e-6).
    their_norm = "rms" if config.layernorm == "rms" and extra else ("t5" if t5_norm else "normal")
    checks = {"layernorm": norm_kind, "layernorm_eps": 1e-6, "pretrainer": "", "enhanced_mask_decoder": False,
              "encoder": "transformer", "attention_dropout": -1.0}
    if their_norm == "rms":
        checks.pop("layernorm_eps")
        if abs(config.layernorm_eps - 1e-6) > 1e-12:
            extra["layernorm_eps"] = config.layernorm_eps
    if config.relative_position_embedding:
        checks.update(remove_attention_scale=True, relative_attention_max_distance=128)
    if config.decoder:
        checks.update(decoder="transformer", decoder_heads_num=0, decoder_feedforward_size=0)
    why = {"layernorm": "UER-py has only its own LayerNorm (unbiased std, eps on the std) and T5's RMS norm "
                        "(\"t5\"); a model trained here with torch's LayerNorm would compute differently there. "
                        "Models imported from UER-py have \"layernorm\": \"uer_py\" or \"t5\"",
           "layernorm_eps": "UER-py's LayerNorm eps is fixed at 1e-6",
           "pretrainer": "UER-py has no composite pretrainers (ELECTRA); export the discriminator's backbone instead",
           "enhanced_mask_decoder": "UER-py has no DeBERTa enhanced mask decoder",
           "encoder": "UER-py has no such encoder",
           "attention_dropout": "UER-py uses 'dropout' for the attention probabilities too",
           "remove_attention_scale": "UER-py adds the relative position bias before the 1/sqrt(head size) "
                                     "scaling, uer after; only unscaled attention (T5) means the same in both",
           "relative_attention_max_distance": "UER-py's relative position buckets end at a fixed 128",
           "decoder": "UER-py has only the transformer decoder",
           "decoder_heads_num": "UER-py's decoder has the encoder's heads_num (0 = the encoder's here)",
           "decoder_feedforward_size": "UER-py's decoder has the encoder's feedforward_size (0 = the encoder's)",
           }
    if config.decoder_heads_num == config.heads_num:
        checks.pop("decoder_heads_num", None)
    if config.decoder_feedforward_size == config.feedforward_size:
        checks.pop("decoder_feedforward_size", None)
    for key, wanted in checks.items():
        value = getattr(config, key)
        if value != wanted and not (isinstance(wanted, float) and abs(value - wanted) <= 1e-12):
            raise ConfigError(f"{source}: '{key}' is {value!r}, a UER-py model needs {wanted!r} ({why[key]})")
    _check_norms({"layernorm": "t5" if t5_norm else "normal", "remove_embedding_layernorm": config.remove_embedding_layernorm},
                 list(config.target), source)
    theirs = uer_py_llm.export_embeddings(config, source)
    for key in ("embedding", "target", "hidden_act") + (("tgt_embedding",) if config.decoder else ()):
        values = _as_list(theirs[key] if key in theirs else getattr(config, key))
        bad = [v for v in (values if isinstance(values, list) else [values]) if v not in SUPPORTED[key]]
        if bad:
            raise ConfigError(f"{source}: '{key}' {bad[0]!r} has no UER-py counterpart the converter writes; "
                              f"supported: {', '.join(SUPPORTED[key])}")
    out = {key: getattr(config, key) for key in UER_PY_MODEL_KEYS
           if key not in ("layernorm", "layernorm_eps", "attention_head_size", "decoder") + DECODER_KEYS + LLM_KEYS}
    out["layernorm"] = their_norm
    out.update(extra)
    if config.decoder:
        out.update(decoder=config.decoder, tgt_embedding=theirs["tgt_embedding"],
                   decoder_layers_num=config.decoder_layers_num or config.layers_num,
                   share_embedding=config.share_embedding)
        # With share_embedding UER-py's output layer is its own matrix whatever tie_weights says; its T5
        # configs say true (models/t5/*), which also ties an unshared decoder table to the output layer.
        out["tie_weights"] = config.tie_weights or config.share_embedding
    if config.attention_head_size and config.attention_head_size * config.heads_num != config.hidden_size:
        out["attention_head_size"] = config.attention_head_size
    out["embedding"], out["target"] = theirs["embedding"], list(config.target)
    return out


# ------------------------------------------------------------------------------------------------
# The parameter table (ours, theirs), built from the config
# ------------------------------------------------------------------------------------------------

def norm(ours: str, theirs: str) -> Entry:
    """UER-py's LayerNorm: gamma / beta."""
    return Entry((ours + ".weight", ours + ".bias"), (theirs + ".gamma", theirs + ".beta"))


TGT_WORD = "tgt_embedding.word.embedding.weight"
# Computed tables, no parameters on either side (UER-py keeps its sinusoid table as a plain attribute).
FIXED_EMBEDDINGS = (uer_py_llm.SINUSOID_OURS,)
# Our output layer tied to a decoder table that UER-py shares with the encoder: UER-py cannot tie it
# (see the module docstring), so export writes it as its own matrix (uer_to_uer_py).
def _tied_to_shared(config: ModelConfig) -> bool:
    return bool(config.decoder) and config.share_embedding and config.tie_weights


def _layer_norm(config: ModelConfig):
    """The transformer's norms: UER-py's LayerNorm (gamma / beta) or T5's RMS norm (weight only)."""
    if config.layernorm in ("t5", "rms"):
        return lambda ours, theirs: param(ours + ".weight", theirs + ".weight")
    return norm


def _linear(config: ModelConfig):
    return (lambda ours, theirs: param(ours + ".weight", theirs + ".weight")) if config.remove_transformer_bias \
        else linear


def _attention(lin, ours: str, theirs: str, config: Optional[ModelConfig] = None) -> List[Row]:
    """q, k, v, output; with ``config`` given and rotary positions on, q's and k's rows are re-ordered
    per head between TencentPretrain's interleaved rotary pairs and our rotate-half ones."""
    out = [lin(f"{ours}.{part}", f"{theirs}.linear_layers.{i}") for i, part in enumerate(("query", "key", "value"))]
    if config is not None and config.rotary_position_embedding:
        for i, heads in ((0, config.heads_num), (1, config.kv_heads)):
            what = ("query", "key")[i] + f" ({theirs}.linear_layers.{i})"
            out[i] = replace(out[i], transform=uer_py_llm.RotaryPairs(heads, config.head_size, what))
    return out + [lin(ours + ".output", theirs + ".final_linear")]


def _ffn(config: ModelConfig, lin, ours: str, theirs: str) -> List[Row]:
    ffn = ("linear_gate", "linear_1", "linear_2") if config.feed_forward == "gated" else ("linear_1", "linear_2")
    return [lin(f"{ours}.{p}", f"{theirs}.{p}") for p in ffn]


def decoder_rows(config: ModelConfig) -> List[Row]:
    """tgt_embedding + decoder (T5 / BART shape); the word table is the encoder's when shared, which
    UER-py's file also stores under the tgt_embedding name."""
    lin, layer_norm = _linear(config), _layer_norm(config)
    out: List[Row] = []
    for name in config.tgt_embedding:
        theirs = f"tgt_embedding.{name}.embedding.weight"
        if name in FIXED_EMBEDDINGS:
            continue
        if name == "word" and config.share_embedding:
            out.append(Tied(theirs, WORD, written=True))
        else:
            out.append(param(theirs, theirs, _tgt_vocab_rows(config) if name == "word" else IDENTITY))
    if not config.remove_embedding_layernorm:
        out.append(norm("tgt_embedding.norm", "tgt_embedding.layer_norm"))
    ours, theirs = "decoder.layers.{i}.", "decoder.transformer_decoder.{i}."
    layer = _attention(lin, ours + "self_attention", theirs + "self_attn") + \
        _attention(lin, ours + "cross_attention", theirs + "context_attn") + \
        _ffn(config, lin, ours + "feed_forward", theirs + "feed_forward") + \
        [layer_norm(ours + f"norm_{n}", theirs + f"layer_norm_{n}") for n in (1, 2, 3)]
    out += per_layer(layer, config.decoder_layers_num or config.layers_num)
    if config.layernorm_positioning == "pre":
        out.append(layer_norm("decoder.final_norm", "decoder.layer_norm"))
    if config.relative_position_embedding:
        out.append(param("decoder.position.embedding.weight", "decoder.self_pos_emb.relative_attention_bias.weight"))
    return out


def rows(config: ModelConfig) -> List[Row]:
    lin, layer_norm = _linear(config), _layer_norm(config)
    out: List[Row] = []
    for name in (n for n in config.embedding if n not in FIXED_EMBEDDINGS):
        out.append(param(f"embedding.{name}.embedding.weight", f"embedding.{name}.embedding.weight",
                         VOCAB_ROWS if name == "word" else IDENTITY))
    if not config.remove_embedding_layernorm:
        out.append(norm("embedding.norm", "embedding.layer_norm"))
    if config.factorized_embedding_parameterization:
        out.append(linear("encoder.linear", "encoder.linear"))
    ours, theirs = ("encoder.layers.0.", "encoder.transformer.") if config.parameter_sharing else \
        ("encoder.layers.{i}.", "encoder.transformer.{i}.")
    out += _attention(lin, ours + "attention", theirs + "self_attn", config)
    out += _ffn(config, lin, ours + "feed_forward", theirs + "feed_forward")
    out += [layer_norm(ours + "norm_1", theirs + "layer_norm_1"), layer_norm(ours + "norm_2", theirs + "layer_norm_2")]
    if config.layernorm_positioning == "pre":
        out.append(layer_norm("encoder.final_norm", "encoder.layer_norm"))
    if config.relative_position_embedding:
        out.append(param("encoder.position.embedding.weight", "encoder.relative_pos_emb.relative_attention_bias.weight"))
    out = per_layer(out, config.layers_num)
    if config.decoder:
        out += decoder_rows(config)
    for name in config.target:
        out += TARGET_ROWS[name](config)
    return out


class _RowsOf(Transform):
    """A vocabulary-rows transform over another vocabulary than the table's (the target one)."""

    def __init__(self, inner: Transform, own: Sizes):
        self.inner, self.own, self.name = inner, own, f"{inner.name}({own.vocab_size} target rows)"

    def to_uer(self, tensors, sizes, notes):
        return self.inner.to_uer(tensors, self.own, notes)

    def to_hf(self, tensors, sizes, notes):
        return self.inner.to_hf(tensors, self.own, notes)


def _tgt_vocab_rows(config: ModelConfig) -> Transform:
    """The decoder side's vocabulary rows: the target vocabulary's when it has its own (UER-py's mt)."""
    if not config.decoder or not config.tgt_vocab_size or config.tgt_vocab_size == config.vocab_size:
        return VOCAB_ROWS
    tgt = dataclasses.replace(config, vocab_size=config.tgt_vocab_size)
    return _RowsOf(VOCAB_ROWS, Sizes(vocab_size=tgt.vocab_size, padded_vocab_size=tgt.padded_vocab_size))


def _output(ours: str, theirs: str, config: ModelConfig) -> List[Row]:
    """An output layer over the vocabulary: the word table itself when tied (UER-py's file stores it
    under both names: the decoder's table in an encoder-decoder model), else its own unpadded rows."""
    if _tied_to_shared(config):
        return []             # written by uer_to_uer_py as its own matrix
    if config.tie_weights:
        return [Tied(theirs, TGT_WORD if config.decoder else WORD, written=True)]
    return [param(ours, theirs, _tgt_vocab_rows(config))]


TARGET_ROWS = {
    "mlm": lambda c: [linear("target.mlm.linear_1", "target.mlm.linear_1"),
                      norm("target.mlm.norm", "target.mlm.layer_norm"),
                      param("target.mlm.output_bias", "target.mlm.linear_2.bias", VOCAB_ROWS),
                      *_output("target.mlm.output_weight", "target.mlm.linear_2.weight", c)],
    "sp": lambda c: [linear("target.sp.linear_1", "target.sp.linear_1"),
                     linear("target.sp.linear_2", "target.sp.linear_2")],
    "lm": lambda c: [*_output("target.lm.output_weight", "target.lm.output_layer.weight", c),
                     *([param("target.lm.output_bias", "target.lm.output_layer.bias", _tgt_vocab_rows(c))]
                       if c.has_lmtarget_bias else [])],
}


def sizes(config: ModelConfig) -> Sizes:
    return Sizes(vocab_size=config.vocab_size, padded_vocab_size=config.padded_vocab_size)


# ------------------------------------------------------------------------------------------------
# Conversions
# ------------------------------------------------------------------------------------------------

def _variant(kind: str, targets: Sequence[str]) -> Variant:
    return Variant("UER-py", kind, tuple(targets), prefixed=False)


def uer_py_to_uer(state: Dict[str, torch.Tensor], uer_py_config: Dict[str, Any], config_source: str,
                  weights_source: str = "the UER-py checkpoint"):
    """A UER-py state dict + its config -> ``Converted`` (our state, our config)."""
    from uer.convert.api import Converted, check_uer_state
    notes: List[str] = []
    if WORD not in state:
        raise CheckpointError(f"{weights_source} has no {WORD}: not a UER-py / TencentPretrain model with a "
                              "word embedding (its keys start with "
                              f"{', '.join(sorted({k.split('.')[0] for k in state})[:6]) or 'nothing'})")
    # UER-py's config does not say the target vocabulary's size (its --tgt_vocab_path does): the
    # decoder's word table does.
    tgt_rows = int(state[TGT_WORD].shape[0]) if TGT_WORD in state else 0
    config = uer_py_config_to_uer(uer_py_config, int(state[WORD].shape[0]), config_source, notes, tgt_rows)
    try:
        ours = table.uer_py_to_uer(rows(config), state, sizes(config), notes)
    except CheckpointError as e:
        raise CheckpointError(f"{weights_source} with {config_source}: {e}. Pass the UER-py config the model "
                              "was trained with (--input_config_path)") from None
    check_uer_state(ours, config, "pretrain")     # every target's parameters were required by the table
    return Converted(ours, config, FAMILY, _variant("pretrain", config.target), dict(uer_py_config), notes)


def uer_to_uer_py(state: Dict[str, torch.Tensor], config: ModelConfig, source: str = "the uer config"):
    """Our checkpoint + config -> ``Converted`` whose ``state`` loads into UER-py's modules with no
    missing or unexpected keys and whose ``hf_config`` is the UER-py config.json."""
    import dataclasses
    from uer.convert.api import Converted, check_uer_state, uer_kind
    if config.vocab_size <= 0:
        raise ConfigError(f"{source} has no vocab_size; pass the vocabulary (--vocab_path) the model was "
                          "trained with")
    uer_py_config = uer_config_to_uer_py(config, source)
    kind, targets = uer_kind(state, config)
    if kind not in ("pretrain", "backbone"):
        raise ConfigError(f"the checkpoint is a fine-tuned '{kind}' model: only pretraining models (embedding + "
                          "encoder + targets) are exported to UER-py, whose task scripts name their heads "
                          "differently; export the pretrained model it started from")
    if kind == "backbone":
        raise ConfigError("the checkpoint holds no pretraining target (a backbone); UER-py's pretraining "
                          "models always have one, so export the pretraining checkpoint")
    config = dataclasses.replace(config, target=list(targets))
    uer_py_config["target"] = list(targets)
    check_uer_state(state, config, kind, "the checkpoint's weights")
    notes: List[str] = []
    theirs = table.uer_to_uer_py(rows(config), state, sizes(config), notes)
    if _tied_to_shared(config):
        # UER-py cannot tie the output layer to a shared table: write it as its own matrix, with T5's
        # hidden_size**-0.5 rescaling folded in (UER-py's LmTarget does not rescale).
        word = theirs[WORD]
        if config.scale_tied_output:
            theirs["target.lm.output_layer.weight"] = word * config.hidden_size ** -0.5
            notes.append("target.lm.output_layer.weight = the shared word table x hidden_size**-0.5 (the "
                         "scale_tied_output rescaling folded in): logits agree to float rounding; UER-py trains "
                         "it as a separate matrix (it cannot tie an output layer to a shared table)")
        else:
            theirs["target.lm.output_layer.weight"] = word.clone()
            notes.append("target.lm.output_layer.weight = a copy of the shared word table: UER-py trains it as "
                         "a separate matrix (it cannot tie an output layer to a shared table)")
    return Converted(theirs, config, FAMILY, _variant(kind, targets), uer_py_config, notes)


# ------------------------------------------------------------------------------------------------
# Recognising a UER-py file where a uer checkpoint is expected
# ------------------------------------------------------------------------------------------------

UER_PY_MARKERS = (".self_attn.linear_layers.", "layer_norm.gamma", "layer_norm_1.gamma",
                  "target.mlm.linear_2.", "target.lm.output_layer.", "encoder.transformer.")


def looks_like_uer_py(keys) -> bool:
    return any(m in k for k in keys for m in UER_PY_MARKERS)


def convert_command(path: str) -> str:
    stem = os.path.splitext(path)[0]
    return (f"python scripts/convert.py --from uer_py --to uer --input_model_path {path} "
            f"--input_config_path <its UER-py config.json> --output_model_path {stem}.uer.bin")


def uer_py_checkpoint_message(path: str, keys=()) -> str:
    seen = [k for k in keys if any(m in k for m in UER_PY_MARKERS)][:2] or \
        ["encoder.transformer.0.self_attn.linear_layers.0.weight", "embedding.layer_norm.gamma"]
    return (f"{path} is a UER-py / TencentPretrain checkpoint (its parameters have UER-py's names, e.g. "
            f"{', '.join(seen)}); uer models name and "
            f"normalise them differently. Convert it once: {convert_command(path)} -- then pass the output "
            "(its config is written beside it) instead")
