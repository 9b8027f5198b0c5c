"""Typed model configuration: dataclasses, JSON/YAML loading, validation.

Model configs use UER-py / TencentPretrain key names (``emb_size``, ``heads_num``, ``embedding``,
``target`` ...) so that their users' JSON files load unchanged.  Every key is checked against the
schema: an unknown key, a value of the wrong type or an impossible combination fails with the file,
the key and the fix — at load time, before any model is built.
"""

import dataclasses
import difflib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from uer.errors import ConfigError
from uer.data.text_files import open_text

HIDDEN_ACTS = ("gelu", "gelu_fast", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")
MASK_KINDS = ("fully_visible", "causal", "causal_with_prefix")
LAYERNORM_KINDS = ("normal", "rms", "t5", "uer_py")   # uer_py: UER-py's LayerNorm (unbiased std)
FEED_FORWARD_KINDS = ("dense", "gated")
INIT_SCHEMES = ("normal", "t5")   # normal: BERT N(0, 0.02); t5: uer.models.t5_init
POOLING_KINDS = ("first", "last", "mean", "max")

# UER-py keys that name features this version does not implement: say so instead of "unknown key".
UNSUPPORTED_UER_KEYS = {
    "is_moe": "mixture-of-experts layers",
    "has_residual_attention": "residual attention (RealFormer: every layer adds the previous layer's "
                              "pre-softmax scores, a matrix the SDPA attention kernels never materialise)",
}

# UER-py / TencentPretrain keys that are accepted (true or false) and change nothing here, and why.
NO_EFFECT_UER_KEYS = {
    # TencentPretrain / BLOOM: scores / (sqrt(d) * layer), then x layer before the softmax — the same
    # probabilities (an fp16 overflow guard); uer's attention softmax runs in SDPA's safe fp32 path.
    "layer_number_scale": "the same attention probabilities as without it",
}

# Older UER-py configs name whole stacks in one string.
LEGACY_EMBEDDINGS = {"word_pos_seg": ["word", "pos", "seg"], "word_pos": ["word", "pos"],
                     "word": ["word"], "word_sinusoidalpos": ["word", "sinusoidalpos"]}
LEGACY_TARGETS = {"bert": ["mlm", "sp"], "albert": ["mlm", "sp"], "mlm": ["mlm"], "lm": ["lm"],
                  "cls": ["cls"], "sp": ["sp"]}


@dataclass
class MaskingConfig:
    """How the collator corrupts inputs for masked-LM targets (BERT defaults)."""
    mask_prob: float = 0.15          # fraction of maskable tokens selected for prediction
    replace_mask: float = 0.8        # of the selected: replaced by [MASK]
    replace_random: float = 0.1      # of the selected: replaced by a random token (rest: kept)
    whole_word_masking: bool = False  # select whole words (WordPiece ## / SentencePiece ▁ boundaries)
    span_masking: bool = False       # select contiguous spans with geometric lengths (SpanBERT)
    span_geo_prob: float = 0.2
    span_max_length: int = 10


@dataclass
class RopeScalingConfig:
    """Rotary frequencies for contexts longer than the model was trained on (Hugging Face's
    ``rope_scaling``).  type: "" (none) | linear (positions / factor) | ntk (static NTK-aware: theta x
    factor^(d/(d-2))) | dynamic (NTK with the factor grown to the current length once it exceeds
    original_max_position_embeddings) | llama3 (LLaMA-3.1: low frequencies / factor, high ones kept,
    a smooth ramp between, set by low_freq_factor / high_freq_factor)."""
    type: str = ""
    factor: float = 1.0
    low_freq_factor: float = 1.0             # llama3
    high_freq_factor: float = 4.0            # llama3
    original_max_position_embeddings: int = 0   # llama3, dynamic; 0 (dynamic only): max_seq_length


@dataclass
class RtdConfig:
    """Replaced-token detection (ELECTRA family): how the generator is built and how inputs are
    corrupted.  The discriminator is the enclosing ModelConfig."""
    generator: str = "joint"          # joint: a small MLM trained alongside | frozen: an MLM checkpoint
                                      # (Fast-ELECTRA) | unigram | random (no network)
    corruption: str = "replace"       # replace: generator samples | swap: shuffle the selected tokens
    generator_size_multiplier: float = 0.25   # generator width/FFN/heads = discriminator's x this
    generator_layers_num: int = 0     # 0: the discriminator's depth
    generator_checkpoint: str = ""    # frozen: the MLM weights file (pretrain.py / convert.py output)
    generator_config: str = ""        # frozen: its model config ("": the one written beside it)
    embedding_sharing: str = "shared"  # none | shared (one table) | gdes (DeBERTaV3: sg(gen) + residual)
    temperature: float = 1.0          # sampling temperature on the generator's logits (constant schedule)
    temperature_schedule: str = "constant"   # constant | exponential | linear | cosine (by optimizer step)
    temperature_start: float = 1.0    # T at step 0 of a non-constant schedule
    temperature_end: float = 1.0      # T from temperature_steps on
    temperature_steps: int = 0        # length of the schedule in optimizer steps
    gen_weight: float = 1.0
    disc_weight: float = 50.0
    decoder_weight: float = 1.0       # metro (encoder-decoder): weight of the decoder's denoising lm loss


@dataclass
class ModelConfig:
    # --- embedding -------------------------------------------------------------------------------
    embedding: List[str] = field(default_factory=lambda: ["word", "pos", "seg"])
    vocab_size: int = 0              # 0: taken from the vocabulary when the model is built
    emb_size: int = 768
    max_seq_length: int = 512
    remove_embedding_layernorm: bool = False
    factorized_embedding_parameterization: bool = False   # ALBERT: emb_size -> hidden_size projection
    # --- encoder ---------------------------------------------------------------------------------
    encoder: str = "transformer"
    hidden_size: int = 768
    feedforward_size: int = 3072
    heads_num: int = 12
    attention_head_size: int = 0     # 0: hidden_size // heads_num
    layers_num: int = 12
    hidden_act: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = -1.0  # < 0: same as dropout
    mask: str = "fully_visible"
    layernorm_positioning: str = "post"
    layernorm: str = "normal"
    layernorm_eps: float = 1e-12
    feed_forward: str = "dense"
    remove_transformer_bias: bool = False
    parameter_sharing: bool = False   # ALBERT cross-layer sharing
    relative_position_embedding: bool = False   # T5 relative-position buckets (an attention bias per stack)
    relative_attention_buckets_num: int = 32
    relative_attention_max_distance: int = 128
    remove_attention_scale: bool = False        # T5: no 1/sqrt(head_size) on q.k
    init: str = "normal"             # initial weights: "normal" (BERT) | "t5" (Mesh TF's; needs
                                     # remove_attention_scale, whose 1/sqrt(head_size) it carries)
    # --- decoder-only LLMs (LLaMA family, BLOOM) ---------------------------------------------------
    kv_heads_num: int = 0             # grouped-query attention: key/value heads (0: heads_num; 1: multi-query);
                                      # TencentPretrain's "local_kv_heads_num" is read as this key
    attention_qkv_bias: bool = False  # q/k/v projections keep their biases under remove_transformer_bias (Qwen2)
    rotary_position_embedding: bool = False   # RoPE on q/k over the whole head, Hugging Face's rotate-half layout
    rope_theta: float = 10000.0       # RoPE base (LLaMA-3: 500000, Qwen2: 1000000)
    rope_scaling: RopeScalingConfig = field(default_factory=RopeScalingConfig)
    alibi_position_embedding: bool = False    # ALiBi: a per-head linear distance penalty on the attention scores
    sliding_window: int = 0           # > 0 (causal mask): a query sees itself and the window - 1 tokens before it
                                      # (Mistral-7B-v0.1: 4096); 0: the whole context
    sliding_window_from_layer: int = 0   # with a sliding window: layers from this index on use it (Qwen2's
                                         # max_window_layers); 0: every layer (Mistral)
    # --- encoder recipes (ModernBERT) -------------------------------------------------------------
    local_attention_window: int = 0   # > 0: sliding-window layers see keys within window / 2 on each side
    global_attention_every_n_layers: int = 0   # with a window: layer i is global when i % n == 0 (ModernBERT: 3);
                                               # 0: every layer local
    local_rope_theta: float = 0.0     # the local layers' RoPE base (ModernBERT: 10000 vs rope_theta 160000); 0: rope_theta
    layernorm_bias: bool = True       # false: LayerNorms without bias (ModernBERT), "layernorm": "normal" only
    first_layer_attention_norm: bool = True   # false: layer 0 attends to the embedding norm's output (ModernBERT)
    mlm_dense_bias: bool = True       # the mlm head's dense layer has a bias (ModernBERT: false)
    # --- decoder side (encoder-decoder models: T5, BART, MT); "" / [] = none -------------------
    tgt_embedding: List[str] = field(default_factory=list)   # parts of the decoder's input embedding
    decoder: str = ""                 # a DECODERS name
    decoder_layers_num: int = 0       # 0: layers_num
    decoder_heads_num: int = 0        # 0: heads_num
    decoder_feedforward_size: int = 0  # 0: feedforward_size
    tgt_vocab_size: int = 0           # 0: vocab_size (set from --tgt_vocab_path when the target has its own)
    share_embedding: bool = False     # the decoder's word table is the encoder's
    scale_embedding: bool = False     # word embeddings x sqrt(emb_size) (Transformer, PEGASUS, Marian)
    scale_tied_output: bool = False   # T5: decoder output x hidden_size^-0.5 before the tied projection
    decoder_start_token_id: int = -1  # the decoder's first input id (T5/PEGASUS/Marian <pad>, BART </s>); -1: [CLS]
    # --- targets ---------------------------------------------------------------------------------
    target: List[str] = field(default_factory=lambda: ["mlm", "sp"])
    tie_weights: bool = True
    has_lmtarget_bias: bool = False
    pooling: str = "first"
    labels_num: int = 2
    data_processor: str = ""         # the processor the targets expect (informative, checked at pretrain)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    enhanced_mask_decoder: bool = False   # DeBERTa EMD: absolute positions + the last layer re-run for mlm
    emd_layers_num: int = 2               # passes of the last layer in the enhanced mask decoder
    # --- composite pretrainers -------------------------------------------------------------------
    pretrainer: str = ""             # a PRETRAINERS name: "" (the targets above) | "electra" (generator +
                                     # discriminator); uer.models.pretrained.backbone_config: what tasks keep
    rtd: RtdConfig = field(default_factory=RtdConfig)
    # --- speed switches (same results, less work; docs/performance.md) ------------------------------
    unpad: bool = False               # encoder drops padding tokens: FFN/norms/projections on real tokens only
    fused_lm_loss: bool = True        # lm/mlm loss fused with the vocabulary projection (uer/targets/vocab_loss.py);
                                      # false: the plain logits + F.cross_entropy path
    lm_loss_chunk_size: int = 0       # fused lm/mlm loss in chunks of this many positions, never
                                      # materialising all logits (0: all positions at once)

    # --- derived ---------------------------------------------------------------------------------
    @property
    def head_size(self) -> int:
        return self.attention_head_size or self.hidden_size // self.heads_num

    @property
    def kv_heads(self) -> int:
        """Key/value heads of the (self-)attention: kv_heads_num, or one per query head."""
        return self.kv_heads_num or self.heads_num

    @property
    def attention_dropout_prob(self) -> float:
        return self.dropout if self.attention_dropout < 0 else self.attention_dropout

    @property
    def padded_vocab_size(self) -> int:
        """Embedding / output rows, rounded up to a multiple of 64 for fast matrix kernels."""
        return int(math.ceil(self.vocab_size / 64.0) * 64)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, List):
        plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
        return f"a list of {plural.get(typing.get_args(tp)[0], 'values')}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value, tp, where: str):
    """Check ``value`` against the dataclass field type ``tp``; return the (lightly coerced) value."""
    origin = typing.get_origin(tp)
    if origin in (list, List):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
        item = typing.get_args(tp)[0]
        return [_coerce(v, item, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} must be a string, got {value!r}")
    raise TypeError(f"unsupported config field type {tp}")


def _from_dict(cls, data: Dict[str, Any], source: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{source}, key '{key}'"
        if key not in fields:
            if cls is ModelConfig and key in NO_EFFECT_UER_KEYS:
                _coerce(value, bool, where)
                continue
            if key in UNSUPPORTED_UER_KEYS:
                if not value:      # e.g. "relative_position_embedding": false — asks for nothing
                    continue
                raise ConfigError(f"{where}: {UNSUPPORTED_UER_KEYS[key]} are not supported by this "
                                  "version of uer; this model cannot be built here yet")
            masking_keys = {f.name for f in dataclasses.fields(MaskingConfig)}
            if cls is ModelConfig and key in masking_keys:
                raise ConfigError(f"{where}: masking settings go inside the \"masking\" object, e.g. "
                                  f"\"masking\": {{\"{key}\": ...}}")
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key.{hint} Valid keys are listed in docs/models.md.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where} must be an object with keys "
                                  f"{[f.name for f in dataclasses.fields(tp)]}")
            kwargs[key] = _from_dict(tp, value, f"{source}, '{key}'")
        else:
            kwargs[key] = _coerce(value, tp, where)
    return cls(**kwargs)


def _read_file(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist (--config_path); the shipped configs "
                          "are under models/, e.g. models/bert/base.json")
    with open_text(path, f"config file {path}") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml
        try:
            data = _yaml_numbers(yaml.safe_load(text))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{line}: not valid YAML ({e}); fix the syntax")
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} line {e.lineno} column {e.colno}: not valid JSON ({e.msg}); "
                              "fix the syntax (trailing commas and comments are not allowed in JSON)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model config must be a JSON object of keys, got {type(data).__name__}")
    return data


def _yaml_numbers(value):
    """PyYAML reads 1e-12 (no dot) as a string; JSON-style numbers are numbers in our configs."""
    if isinstance(value, dict):
        return {k: _yaml_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_numbers(v) for v in value]
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in "eE.") and value.strip()[0] in "+-.0123456789" \
                else value
        except ValueError:
            return value
    return value


def normalize_legacy(data: Dict[str, Any]) -> Dict[str, Any]:
    """Accept UER-py's older single-string names ("word_pos_seg", target "bert")."""
    data = dict(data)
    for key, table in (("embedding", LEGACY_EMBEDDINGS), ("tgt_embedding", LEGACY_EMBEDDINGS),
                       ("target", LEGACY_TARGETS)):
        value = data.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]     # "--target bert" arrives from the command line as ["bert"]
        if isinstance(value, str) and value in table:
            data[key] = table[value]
    if data.get("layernorm_positioning") == "normal":
        data["layernorm_positioning"] = "post"
    return data


# Other toolkits' names for our keys (TencentPretrain: its grouped-query attention's key/value heads).
KEY_ALIASES = {"local_kv_heads_num": "kv_heads_num"}


def resolve_aliases(data: Dict[str, Any], source: str) -> Dict[str, Any]:
    """Read an alias as its key; both spellings with different values is refused."""
    data = dict(data)
    for alias, key in KEY_ALIASES.items():
        if alias in data:
            value = data.pop(alias)
            if key in data and data[key] != value:
                raise ConfigError(f"{source}: keys '{alias}' ({value!r}) and '{key}' ({data[key]!r}) name the "
                                  f"same setting with different values; keep only '{key}'")
            data[key] = value
    return data


def config_from_dict(data: Dict[str, Any], source: str = "<config>") -> ModelConfig:
    config = _from_dict(ModelConfig, normalize_legacy(resolve_aliases(data, source)), source)
    validate(config, source)
    return config


# What a config *file* means by omitting a key, where that differs from the dataclass default: UER-py /
# TencentPretrain's meaning, since their users' files use the same key names and leave these out (every
# UER-py config omits layernorm_eps; ALBERT's and T5 v1.1's omit tie_weights and are untied there).  The
# dataclass defaults (BERT's 1e-12, tied) stay for configs built in code; every config uer writes (pretrain,
# fine-tuning, convert.py) states every key, so this only decides files written by hand or by UER-py.
# The norm is the one meaning that cannot follow UER-py this way: "normal" is torch.nn.LayerNorm here
# (docs/migrating.md); scripts/convert.py --from uer_py selects "uer_py" for imported weights.
FILE_DEFAULTS = {"layernorm_eps": 1e-6, "tie_weights": False}


def load_config(path: str, overrides: Optional[Dict[str, Any]] = None) -> ModelConfig:
    """Load ``path`` (JSON or YAML); ``overrides`` (e.g. from the command line) win over the file, and
    the file over FILE_DEFAULTS (UER-py's meaning of an omitted key) and the dataclass defaults."""
    data = {**FILE_DEFAULTS, **_read_file(path)}
    source = path
    if overrides:
        data = dict(data)
        file_masking = data.get("masking") or {}
        if not isinstance(file_masking, dict):
            raise ConfigError(f"{path}, key 'masking' must be an object with keys "
                              f"{[f.name for f in dataclasses.fields(MaskingConfig)]}")
        masking = dict(file_masking)
        masking.update(overrides.get("masking") or {})
        if isinstance(overrides.get("rtd"), dict):     # e.g. --rtd_generator_checkpoint: merged key by key
            file_rtd = data.get("rtd") or {}
            data["rtd"] = {**(file_rtd if isinstance(file_rtd, dict) else {}), **overrides["rtd"]}
        for key, value in overrides.items():
            if key in {f.name for f in dataclasses.fields(MaskingConfig)}:
                masking[key] = value
            elif key not in ("masking", "rtd"):
                data[key] = value
        if masking:
            data["masking"] = masking
        source = f"{path} (with command-line overrides {sorted(overrides)})"
    return config_from_dict(data, source)


def save_config(config: ModelConfig, path: str) -> None:
    from uer.utils import atomic_write_text
    atomic_write_text(path, json.dumps(config.to_dict(), indent=2) + "\n")


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------

def _choice(source: str, key: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{source}, key '{key}': '{value}' is not one of {', '.join(choices)}")


# Checks that need the modules themselves (their registries: embedding, encoder, target and
# pretrainer names, a pretrainer's own section) are registered by the code that owns those modules
# (uer.models, when it is imported), so that this file describes modules without importing them.
Validator = Callable[[ModelConfig, str], None]
_VALIDATORS: List[Validator] = []


def register_validator(check: Validator) -> Validator:
    """Run ``check(config, source)`` in every ``validate`` (it raises ConfigError); a decorator."""
    if check not in _VALIDATORS:
        _VALIDATORS.append(check)
    return check


def validate(config: ModelConfig, source: str = "<config>") -> None:
    """Schema-level checks, after the registered module checks (module names first: a typo in
    "encoder" is reported as such, not as one of its consequences).  The module checks run only
    where the modules are imported — every entry point that builds a model imports them."""
    c = config
    for check in _VALIDATORS:
        check(c, source)
    if not c.embedding or "word" not in c.embedding:
        raise ConfigError(f"{source}, key 'embedding': must include \"word\", got {c.embedding}")
    if not c.target:
        raise ConfigError(f"{source}, key 'target': name at least one target, e.g. [\"mlm\"]")
    _choice(source, "hidden_act", c.hidden_act, HIDDEN_ACTS)
    _choice(source, "mask", c.mask, MASK_KINDS)
    _choice(source, "layernorm_positioning", c.layernorm_positioning, ("pre", "post"))
    _choice(source, "layernorm", c.layernorm, LAYERNORM_KINDS)
    _choice(source, "feed_forward", c.feed_forward, FEED_FORWARD_KINDS)
    _choice(source, "init", c.init, INIT_SCHEMES)
    if c.init == "t5" and not c.remove_attention_scale:
        raise ConfigError(f"{source}, key 'init': \"t5\" draws q with the 1/sqrt(head_size) that T5 leaves out "
                          "of attention, so with the attention's own scaling it would apply twice; set "
                          "\"remove_attention_scale\": true (as T5 does) or \"init\": \"normal\"")
    _choice(source, "pooling", c.pooling, POOLING_KINDS)
    for key in ("emb_size", "hidden_size", "feedforward_size", "heads_num", "layers_num", "max_seq_length",
                "relative_attention_buckets_num", "relative_attention_max_distance"):
        if getattr(c, key) <= 0:
            raise ConfigError(f"{source}, key '{key}': must be positive, got {getattr(c, key)}")
    if c.relative_position_embedding and c.relative_attention_buckets_num < 4:
        raise ConfigError(f"{source}, key 'relative_attention_buckets_num': T5 buckets need at least 4 (half per "
                          f"direction, half of those exact), got {c.relative_attention_buckets_num}; T5 uses 32")
    if c.relative_position_embedding and c.relative_attention_max_distance <= c.relative_attention_buckets_num // 2:
        raise ConfigError(f"{source}, key 'relative_attention_max_distance': must exceed half of "
                          f"relative_attention_buckets_num ({c.relative_attention_buckets_num // 2}), the exactly "
                          f"bucketed distances, got {c.relative_attention_max_distance}; T5 uses 128")
    if c.attention_head_size < 0:
        raise ConfigError(f"{source}, key 'attention_head_size': must be ≥ 0 (0 = hidden_size / heads_num), "
                          f"got {c.attention_head_size}")
    for key in ("dropout", "attention_dropout", "layernorm_eps"):
        if not math.isfinite(getattr(c, key)):
            raise ConfigError(f"{source}, key '{key}': must be a finite number, got {getattr(c, key)}")
    if c.layernorm_eps <= 0:
        raise ConfigError(f"{source}, key 'layernorm_eps': must be > 0 (it keeps the normalisation from dividing "
                          f"by zero; BERT uses 1e-12, UER-py 1e-6), got {c.layernorm_eps}")
    if c.vocab_size < 0:
        raise ConfigError(f"{source}, key 'vocab_size': must be ≥ 0 (0 = from the vocabulary)")
    if c.attention_head_size == 0 and c.hidden_size % c.heads_num:
        raise ConfigError(f"{source}, keys 'hidden_size'/'heads_num': hidden_size {c.hidden_size} is not "
                          f"divisible by heads_num {c.heads_num}; change heads_num (e.g. "
                          f"{_divisor_hint(c.hidden_size, c.heads_num)}) or set attention_head_size")
    if not 0.0 <= c.dropout < 1.0:
        raise ConfigError(f"{source}, key 'dropout': must be in [0, 1), got {c.dropout}")
    if c.attention_dropout >= 1.0:
        raise ConfigError(f"{source}, key 'attention_dropout': must be < 1, got {c.attention_dropout}")
    if c.emb_size != c.hidden_size and not c.factorized_embedding_parameterization:
        raise ConfigError(f"{source}: emb_size {c.emb_size} differs from hidden_size {c.hidden_size}; "
                          "set \"factorized_embedding_parameterization\": true (ALBERT) or make them equal")
    _validate_decoder_side(c, source)
    _validate_llm_options(c, source)
    _validate_encoder_recipe_options(c, source)
    _validate_sliding_window(c, source)
    _validate_speed_options(c, source)
    if "lm" in c.target and c.mask == "fully_visible" and not c.decoder:
        raise ConfigError(f"{source}: target 'lm' with mask 'fully_visible' lets every position see the "
                          "token it must predict; set \"mask\": \"causal\"")
    if "lm" in c.target and c.tie_weights and c.emb_size != c.hidden_size:
        raise ConfigError(f"{source}: target 'lm' cannot tie its output to a {c.emb_size}-wide embedding "
                          f"from {c.hidden_size}-wide hidden states; set \"tie_weights\": false or make "
                          "emb_size equal hidden_size")
    if "mlm" in c.target and c.mask == "causal":
        raise ConfigError(f"{source}: target 'mlm' with mask 'causal' hides the right context a masked "
                          "LM needs; set \"mask\": \"fully_visible\"")
    if c.emd_layers_num < 1:
        raise ConfigError(f"{source}, key 'emd_layers_num': must be ≥ 1 (DeBERTa uses 2), got {c.emd_layers_num}")
    if c.enhanced_mask_decoder and c.encoder != "deberta":
        raise ConfigError(f"{source}, key 'enhanced_mask_decoder': the enhanced mask decoder re-runs the last "
                          f"layer of a \"deberta\" encoder, got encoder '{c.encoder}'; set \"encoder\": "
                          "\"deberta\" or \"enhanced_mask_decoder\": false")
    if c.enhanced_mask_decoder and "mlm" not in c.target:
        raise ConfigError(f"{source}, key 'enhanced_mask_decoder': the enhanced mask decoder feeds the 'mlm' "
                          f"target, got target {c.target}; add \"mlm\" or set \"enhanced_mask_decoder\": false")
    if c.labels_num < 2 and "cls" in c.target:
        raise ConfigError(f"{source}, key 'labels_num': a classifier needs at least 2 labels")
    m = c.masking
    for key in ("mask_prob", "replace_mask", "replace_random", "span_geo_prob"):
        if not math.isfinite(getattr(m, key)):
            raise ConfigError(f"{source}, key 'masking.{key}': must be a finite number, got {getattr(m, key)}")
    if not 0.0 < m.mask_prob < 1.0:
        raise ConfigError(f"{source}, key 'masking.mask_prob': must be in (0, 1), got {m.mask_prob}")
    if m.replace_mask < 0 or m.replace_random < 0 or m.replace_mask + m.replace_random > 1.0 + 1e-9:
        raise ConfigError(f"{source}, keys 'masking.replace_mask'/'replace_random': need two fractions ≥ 0 "
                          f"summing to at most 1 (the rest is kept), got {m.replace_mask}, {m.replace_random}")
    if m.span_masking and not (0.0 < m.span_geo_prob <= 1.0 and m.span_max_length >= 1):
        raise ConfigError(f"{source}, keys 'masking.span_geo_prob'/'span_max_length': need 0 < p ≤ 1 and "
                          "max length ≥ 1")


def _validate_speed_options(c: ModelConfig, source: str) -> None:
    """unpad: only a bidirectional "transformer" encoder without a decoder, and no position scheme
    that needs the padded grid (T5 buckets, DeBERTa); the loss chunk is a count of positions."""
    if c.lm_loss_chunk_size < 0:
        raise ConfigError(f"{source}, key 'lm_loss_chunk_size': a number of positions per chunk (0: all at once), "
                          f"got {c.lm_loss_chunk_size}")
    if c.lm_loss_chunk_size and not c.fused_lm_loss:
        raise ConfigError(f"{source}, keys 'lm_loss_chunk_size'/'fused_lm_loss': chunks are a mode of the fused "
                          "loss; set \"fused_lm_loss\": true or drop lm_loss_chunk_size")
    if not c.unpad:
        return
    refusals = [
        (c.encoder != "transformer", "encoder", f"unpadding is built into the \"transformer\" encoder, got "
                                                 f"'{c.encoder}' (DeBERTa's disentangled attention needs the padded grid)"),
        (c.mask != "fully_visible", "mask", f"unpadding serves bidirectional encoders (BERT, ModernBERT), got "
                                            f"mask '{c.mask}' (causal LMs pack sequences instead)"),
        (bool(c.decoder), "decoder", "unpadding is not supported for encoder-decoder models"),
        (c.relative_position_embedding, "relative_position_embedding",
         "T5 relative buckets are not supported with unpadding (absolute, rotary and ALiBi are)"),
    ]
    for refused, key, why in refusals:
        if refused:
            raise ConfigError(f"{source}, key '{key}': {why}; set \"unpad\": false")


def _validate_decoder_side(c: ModelConfig, source: str) -> None:
    """Encoder-decoder keys: both halves named or neither, sizes that fit, sharing that is possible."""
    if c.decoder and not c.tgt_embedding:
        raise ConfigError(f"{source}, key 'decoder': decoder '{c.decoder}' needs an input embedding; add "
                          "\"tgt_embedding\": [\"word\", ...] (e.g. [\"word\"] for T5, [\"word\", \"pos\"] for BART)")
    if c.tgt_embedding and not c.decoder:
        raise ConfigError(f"{source}, key 'tgt_embedding': a target embedding feeds a decoder; add "
                          "\"decoder\": \"transformer\" or remove \"tgt_embedding\"")
    for key in ("decoder_layers_num", "decoder_heads_num", "decoder_feedforward_size", "tgt_vocab_size"):
        if getattr(c, key) < 0:
            raise ConfigError(f"{source}, key '{key}': must be ≥ 0 (0 = the encoder's value), got {getattr(c, key)}")
    tgt_vocab = c.tgt_vocab_size or c.vocab_size
    if c.decoder_start_token_id < -1 or (tgt_vocab and c.decoder_start_token_id >= tgt_vocab):
        raise ConfigError(f"{source}, key 'decoder_start_token_id': {c.decoder_start_token_id} is not a target "
                          f"vocabulary id (0..{tgt_vocab - 1}); use -1 for the vocabulary's [CLS]")
    if not c.decoder:
        for key in ("share_embedding", "scale_tied_output"):
            if getattr(c, key):
                raise ConfigError(f"{source}, key '{key}': applies to encoder-decoder models only; set "
                                  "\"decoder\" and \"tgt_embedding\" or remove it")
        return
    if "word" not in c.tgt_embedding:
        raise ConfigError(f"{source}, key 'tgt_embedding': must include \"word\", got {c.tgt_embedding}")
    heads = c.decoder_heads_num or c.heads_num
    if c.attention_head_size == 0 and c.hidden_size % heads:
        raise ConfigError(f"{source}, key 'decoder_heads_num': hidden_size {c.hidden_size} is not divisible by "
                          f"{heads} decoder heads; change decoder_heads_num (e.g. "
                          f"{_divisor_hint(c.hidden_size, heads)}) or set attention_head_size")
    if c.share_embedding and c.tgt_vocab_size and c.vocab_size and c.tgt_vocab_size != c.vocab_size:
        raise ConfigError(f"{source}, key 'share_embedding': source and target vocabularies differ "
                          f"({c.vocab_size} vs {c.tgt_vocab_size} tokens), so one word table cannot serve both; "
                          "set \"share_embedding\": false or use one vocabulary")
    if c.mask != "fully_visible":
        raise ConfigError(f"{source}, key 'mask': the encoder of an encoder-decoder model reads its whole "
                          f"input (the decoder is causal by construction), got '{c.mask}'; set "
                          "\"mask\": \"fully_visible\"")
    if c.parameter_sharing or c.factorized_embedding_parameterization:
        raise ConfigError(f"{source}: 'parameter_sharing' / 'factorized_embedding_parameterization' are "
                          "encoder-only (ALBERT) options; set them false for an encoder-decoder model")
    # A composite pretrainer (metro: generator mlm + encoder rtd + decoder lm) checks its own targets.
    if c.target != ["lm"] and not c.pretrainer:
        raise ConfigError(f"{source}, key 'target': an encoder-decoder model trains its decoder with the "
                          f"\"lm\" target (cross-entropy on tgt_out), got {c.target}; set \"target\": [\"lm\"]")


ROPE_SCALING_TYPES = ("", "linear", "ntk", "dynamic", "llama3")


def _validate_llm_options(c: ModelConfig, source: str) -> None:
    """Grouped-query attention, rotary and ALiBi positions: values that work, one position scheme."""
    if c.kv_heads_num < 0 or (c.kv_heads_num and c.heads_num % c.kv_heads_num):
        raise ConfigError(f"{source}, key 'kv_heads_num': must divide heads_num {c.heads_num} (every key/value "
                          f"head serves the same number of query heads; 0 = heads_num), got {c.kv_heads_num}")
    schemes = [k for k in ("rotary_position_embedding", "alibi_position_embedding", "relative_position_embedding")
               if getattr(c, k)]
    if len(schemes) > 1:
        raise ConfigError(f"{source}, keys {schemes}: an attention layer takes one position scheme; keep one of them")
    for key in ("kv_heads_num", "rotary_position_embedding", "alibi_position_embedding"):
        if not getattr(c, key):
            continue
        if c.decoder:
            raise ConfigError(f"{source}, key '{key}': built for decoder-only and encoder-only stacks (the "
                              "\"transformer\" encoder); an encoder-decoder model's decoder does not take it — "
                              "remove the key or \"decoder\"")
        if c.encoder == "deberta":
            raise ConfigError(f"{source}, key '{key}': the \"deberta\" encoder has its own disentangled position "
                              "attention; use \"encoder\": \"transformer\" or remove the key")
    if not math.isfinite(c.rope_theta) or c.rope_theta <= 1.0:
        raise ConfigError(f"{source}, key 'rope_theta': the RoPE base must be a finite number > 1 (LLaMA: 10000), "
                          f"got {c.rope_theta}")
    if c.rotary_position_embedding and c.head_size % 2:
        raise ConfigError(f"{source}, key 'rotary_position_embedding': rotary embeddings rotate pairs of head "
                          f"dimensions, so the head size must be even, got {c.head_size}")
    s = c.rope_scaling
    _choice(source, "rope_scaling.type", s.type, ROPE_SCALING_TYPES)
    if not s.type:
        return
    if not c.rotary_position_embedding:
        raise ConfigError(f"{source}, key 'rope_scaling': scales rotary position embeddings; set "
                          "\"rotary_position_embedding\": true or remove \"rope_scaling\"")
    if not (math.isfinite(s.factor) and s.factor >= 1.0):
        raise ConfigError(f"{source}, key 'rope_scaling.factor': the context extension factor must be ≥ 1 "
                          f"(e.g. 8 for LLaMA-3.1), got {s.factor}")
    if s.original_max_position_embeddings < 0 or (s.type == "llama3" and s.original_max_position_embeddings == 0):
        raise ConfigError(f"{source}, key 'rope_scaling.original_max_position_embeddings': the context length the "
                          f"model was trained with (LLaMA-3.1: 8192) is needed by '{s.type}' scaling, got "
                          f"{s.original_max_position_embeddings}")
    if s.type == "llama3" and not (0 < s.low_freq_factor < s.high_freq_factor and math.isfinite(s.high_freq_factor)):
        raise ConfigError(f"{source}, keys 'rope_scaling.low_freq_factor'/'high_freq_factor': need 0 < low < high "
                          f"(LLaMA-3.1: 1 and 4), got {s.low_freq_factor} and {s.high_freq_factor}")


def _validate_sliding_window(c: ModelConfig, source: str) -> None:
    """The decoder's causal sliding window: a causal transformer stack, not mixed with ModernBERT's band."""
    if c.sliding_window < 0:
        raise ConfigError(f"{source}, key 'sliding_window': the window is a number of tokens >= 1 (Mistral-7B-v0.1: "
                          f"4096) or 0 (the whole context), got {c.sliding_window}")
    if not c.sliding_window:
        if c.sliding_window_from_layer:
            raise ConfigError(f"{source}, key 'sliding_window_from_layer': chooses the layers that use "
                              "\"sliding_window\"; set \"sliding_window\" (e.g. 4096) or remove the key")
        return
    if c.mask != "causal" or c.encoder != "transformer" or c.decoder:
        raise ConfigError(f"{source}, key 'sliding_window': a one-sided window for decoder-only LMs (\"encoder\": "
                          f"\"transformer\", \"mask\": \"causal\", no decoder), got encoder '{c.encoder}' with mask "
                          f"'{c.mask}'{' and a decoder' if c.decoder else ''}; for a bidirectional window use "
                          "\"local_attention_window\"")
    if c.local_attention_window:
        raise ConfigError(f"{source}, key 'sliding_window': cannot be combined with \"local_attention_window\" "
                          "(ModernBERT's two-sided band); keep one of them")
    if not 0 <= c.sliding_window_from_layer < c.layers_num:
        raise ConfigError(f"{source}, key 'sliding_window_from_layer': must be a layer index in 0 .. "
                          f"{c.layers_num - 1} (layers_num {c.layers_num}), got {c.sliding_window_from_layer}")


def _validate_encoder_recipe_options(c: ModelConfig, source: str) -> None:
    """Sliding-window layers, their RoPE base and ModernBERT's bias-free norms: values that work, and
    keys that would silently change nothing refused."""
    window, every = c.local_attention_window, c.global_attention_every_n_layers
    if window < 0 or window % 2 or window == 1:
        raise ConfigError(f"{source}, key 'local_attention_window': the window must be an even number of "
                          f"tokens (a query sees window / 2 on each side; ModernBERT: 128) or 0 (none), got {window}")
    if every < 0:
        raise ConfigError(f"{source}, key 'global_attention_every_n_layers': must be >= 0 (ModernBERT: 3), got {every}")
    if every and not window:
        raise ConfigError(f"{source}, key 'global_attention_every_n_layers': places global layers among "
                          "sliding-window ones; set \"local_attention_window\" (e.g. 128) or remove the key")
    if every == 1:
        raise ConfigError(f"{source}, key 'global_attention_every_n_layers': 1 makes every layer global, so the "
                          "window is never used; use >= 2 (ModernBERT: 3) or remove \"local_attention_window\"")
    if not math.isfinite(c.local_rope_theta) or (c.local_rope_theta and c.local_rope_theta <= 1.0):
        raise ConfigError(f"{source}, key 'local_rope_theta': the local layers' RoPE base must be > 1 (ModernBERT: "
                          f"10000) or 0 (rope_theta), got {c.local_rope_theta}")
    if c.local_rope_theta and not (window and c.rotary_position_embedding):
        raise ConfigError(f"{source}, key 'local_rope_theta': sets the RoPE base of sliding-window layers; it needs "
                          "\"rotary_position_embedding\": true and \"local_attention_window\" > 0, or remove it")
    if window and (c.encoder != "transformer" or c.decoder):
        raise ConfigError(f"{source}, key 'local_attention_window': built for the \"transformer\" encoder of an "
                          f"encoder-only or decoder-only model, got encoder '{c.encoder}'"
                          f"{' with a decoder' if c.decoder else ''}; remove the key")
    if not c.layernorm_bias and c.layernorm != "normal":
        raise ConfigError(f"{source}, key 'layernorm_bias': false drops the bias of \"layernorm\": \"normal\"; "
                          f"'{c.layernorm}' norms {'have none' if c.layernorm in ('rms', 't5') else 'always keep it'}"
                          "; remove the key")
    for key in ("layernorm_bias", "first_layer_attention_norm"):
        if not getattr(c, key) and (c.encoder != "transformer" or c.decoder):
            raise ConfigError(f"{source}, key '{key}': false applies to the \"transformer\" encoder without a "
                              f"decoder (ModernBERT), got encoder '{c.encoder}'{' with a decoder' if c.decoder else ''}; "
                              "remove the key")
    if not c.first_layer_attention_norm and c.layernorm_positioning != "pre":
        raise ConfigError(f"{source}, key 'first_layer_attention_norm': false drops the first layer's pre-attention "
                          "norm (the embedding's norm serves), which needs \"layernorm_positioning\": \"pre\"")
    if not c.first_layer_attention_norm and c.parameter_sharing:
        raise ConfigError(f"{source}, key 'first_layer_attention_norm': false cannot hold with \"parameter_sharing\" "
                          "(one layer serves every depth); remove one of them")
    if not c.mlm_dense_bias and "mlm" not in c.target:
        raise ConfigError(f"{source}, key 'mlm_dense_bias': configures the 'mlm' target's head, got target "
                          f"{c.target}; remove the key")


def _divisor_hint(hidden: int, heads: int) -> int:
    divisors = [d for d in range(1, hidden + 1) if hidden % d == 0]
    return min(divisors, key=lambda d: abs(d - heads))


def find_config_beside(weights_path: Optional[str]) -> Optional[str]:
    """The config written beside a weights file: pretrain.py / fine-tuning's ``<out>.config.json``
    (also for a ``<out>-N`` step checkpoint), else scripts/convert.py's ``<out without extension>.json``."""
    if not weights_path:
        return None
    prefix = re.sub(r"-\d+$", "", weights_path)
    for candidate in (prefix + ".config.json", weights_path + ".config.json",
                      os.path.splitext(weights_path)[0] + ".json"):
        if candidate != weights_path and os.path.isfile(candidate):
            return candidate
    return None
