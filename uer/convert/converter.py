"""The per-family converter interface.

A family (``bert``, ``roberta`` ...) knows
* its Hugging Face ``model_type`` and the model classes it maps (``variants``), each onto one kind
  of uer model: ``pretrain`` (embedding + encoder + the named targets), ``backbone`` (embedding +
  encoder, optionally the pooler as ``head.linear_1``), ``classifier`` (``uer.tasks``' Classifier) or
  ``tagger`` (``uer.tasks.tagging``'s per-token Tagger);
* how its ``config.json`` translates to our ``ModelConfig`` and back (sizes are always read from
  one of the two, never passed by hand);
* its parameter table: the backbone's rows (relative to the base model's attribute, "bert.") plus
  the rows of each head.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from uer.config import ModelConfig
from uer.convert.table import Row, Tied, param, per_layer, prefixed
from uer.convert.transforms import VOCAB_ROWS, Sizes
from uer.errors import ConfigError

KINDS = ("pretrain", "backbone", "classifier", "tagger")

# Hugging Face activation names -> ours, and back.
# The tanh GELU keeps its way of computing (uer/layers/activations.py): transformers' explicit formulas
# ("gelu_new", "gelu_fast") import as our formula, its fused kernel ("gelu_pytorch_tanh") as our kernel.
HF_TO_UER_ACT = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_pytorch_tanh",
                 "gelu_fast": "gelu_new", "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh"}
UER_TO_HF_ACT = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_fast": "gelu_pytorch_tanh",
                 "gelu_pytorch_tanh": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu", "swish": "silu",
                 "tanh": "tanh"}

# Buffers Hugging Face files may hold that are not parameters (older versions saved them).
COMMON_BUFFERS = (r"(^|\.)embeddings\.position_ids$", r"(^|\.)embeddings\.token_type_ids$")


@dataclass(frozen=True)
class Variant:
    hf_class: str                    # "BertForPreTraining"
    kind: str                        # one of KINDS
    targets: Tuple[str, ...] = ()    # for kind "pretrain": our targets, in config order
    prefixed: bool = True            # backbone under the base model's attribute ("bert.")


class Converter:
    family = ""                      # registry name, the --architecture choice
    model_type = ""                  # config.json "model_type"
    base_prefix = ""                 # "bert."
    variants: Tuple[Variant, ...] = ()
    buffers: Tuple[str, ...] = COMMON_BUFFERS
    default_targets: Tuple[str, ...] = ()
    data_processor = ""
    # Classes of this family uer cannot represent exactly -> why (the error names it instead of
    # "not a class uer converts").
    refused: Dict[str, str] = {}

    # ---------------------------------------------------------------- variants
    def variant(self, hf_class: str) -> Variant:
        if hf_class in self.refused:
            raise ConfigError(self.refused[hf_class])
        for v in self.variants:
            if v.hf_class == hf_class:
                return v
        raise ConfigError(f"{hf_class} is not a {self.family} model class uer converts; supported: "
                          f"{', '.join(v.hf_class for v in self.variants)}")

    def variant_for(self, kind: str, targets: Sequence[str]) -> Variant:
        for v in self.variants:
            if v.kind == kind and (kind != "pretrain" or tuple(v.targets) == tuple(targets)):
                return v
        what = f"targets {list(targets)}" if kind == "pretrain" else f"a {kind}"
        options = ", ".join(f"{v.hf_class} ({'+'.join(v.targets) or v.kind})" for v in self.variants)
        raise ConfigError(f"no {self.family} model class matches a uer model with {what}; the "
                          f"{self.family} classes are {options}. Pick another --architecture, or drop "
                          "parameters with --discard (e.g. --discard target.sp.)")

    # ---------------------------------------------------------------- configs
    def check_uer(self, config: ModelConfig) -> None:
        """Refuse (naming the key) a uer config this family cannot represent."""

    def config_to_uer(self, hf: Dict[str, Any], variant: Variant) -> Dict[str, Any]:
        raise NotImplementedError

    def hf_config_from_weights(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        """Import: settings config.json leaves implicit but the weight names show (a head layout)."""
        return hf

    def fit_hf_config(self, hf: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        """Settings of the exported config.json that follow from the weights themselves."""
        return hf

    def config_to_hf(self, config: ModelConfig, variant: Variant,
                     special: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        """``special``: token ids from the vocabulary ({"pad_token_id": 0, ...}) when it is known."""
        raise NotImplementedError

    def sizes(self, config: ModelConfig, hf: Dict[str, Any]) -> Sizes:
        return Sizes(vocab_size=config.vocab_size, padded_vocab_size=config.padded_vocab_size,
                     type_vocab_size=int(hf.get("type_vocab_size", 2)),
                     position_offset=self.position_offset(hf))

    def position_offset(self, hf: Dict[str, Any]) -> int:
        """How many rows their position table has before our position 0 (RoBERTa: padding_idx + 1)."""
        return 0

    # ---------------------------------------------------------------- tables
    def backbone_rows(self, config: ModelConfig) -> List[Row]:
        raise NotImplementedError

    def head_rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        raise NotImplementedError

    def causal_lm_head_rows(self, config: ModelConfig, variant: Variant, word_table: str) -> List[Row]:
        """The ``lm_head`` of a *ForCausalLM class (GPT-2, LLaMA, BLOOM ...): tied to the base model's
        ``word_table`` (a name under base_prefix) or its own matrix; none for the backbone classes."""
        if variant.kind != "pretrain":
            return []
        if config.tie_weights:
            return [Tied("lm_head.weight", self.base_prefix + word_table)]
        return [param("target.lm.output_weight", "lm_head.weight", VOCAB_ROWS)]

    def rows(self, config: ModelConfig, variant: Variant) -> List[Row]:
        prefix = self.base_prefix if variant.prefixed else ""
        rows = prefixed(self.backbone_rows(config), prefix) + self.head_rows(config, variant)
        return per_layer(rows, config.layers_num)

    # ---------------------------------------------------------------- helpers
    def targets_config(self, variant: Variant) -> Dict[str, Any]:
        targets = variant.targets if variant.kind == "pretrain" else self.default_targets
        return {"target": list(targets), "data_processor": self.data_processor}

    def require(self, config: ModelConfig, checks: Dict[str, Any], source: str = "the uer config") -> None:
        """Refuse a uer config this family cannot represent, naming the key."""
        for key, wanted in checks.items():
            value = getattr(config, key)
            if value != wanted:
                raise ConfigError(f"{source}: '{key}' is {value!r}, but a Hugging Face {self.family} "
                                  f"model needs {wanted!r}; choose another --architecture")

    def hf_require(self, hf: Dict[str, Any], checks: Dict[str, Any]) -> None:
        """Refuse a config.json option uer does not implement, naming it."""
        for key, wanted in checks.items():
            if key in hf and hf[key] is not None and hf[key] != wanted:
                raise ConfigError(f"config.json: '{key}' is {hf[key]!r}; uer implements only {wanted!r} "
                                  f"for {self.family} models, so this checkpoint cannot be converted")


def hf_act(name: str) -> str:
    if name not in HF_TO_UER_ACT:
        raise ConfigError(f"config.json: activation '{name}' has no uer equivalent; supported: "
                          f"{', '.join(sorted(HF_TO_UER_ACT))}")
    return HF_TO_UER_ACT[name]


def uer_act(name: str) -> str:
    return UER_TO_HF_ACT[name]


def labels_config(labels_num: int, names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    names = list(names) if names else [f"LABEL_{i}" for i in range(labels_num)]
    return {"id2label": {str(i): n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)}}


def hf_label_names(hf: Dict[str, Any]) -> Optional[List[str]]:
    """The label names of a config.json's id2label in id order (None when it has none)."""
    id2label = hf.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    return [id2label.get(str(i), id2label.get(i)) for i in range(len(id2label))]


def hf_labels_num(hf: Dict[str, Any]) -> int:
    if isinstance(hf.get("id2label"), dict) and hf["id2label"]:
        return len(hf["id2label"])
    return int(hf.get("num_labels", 2))
