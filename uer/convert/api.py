"""Hugging Face <-> uer conversion of whole models: config translation, the parameter table, and a
final check of the result against the uer model the config builds."""

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from uer.config import ModelConfig, config_from_dict, validate
from uer.convert import table
from uer.convert.converter import Converter, Variant, labels_config
from uer.convert.hf_files import read_config, read_weights
from uer.convert.registry import CONVERTERS
from uer.errors import CheckpointError, ConfigError


@dataclass
class Converted:
    """The result of a conversion in either direction."""
    state: Dict[str, torch.Tensor]
    config: ModelConfig
    family: str
    variant: Variant
    hf_config: Dict = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Looking up converters
# ------------------------------------------------------------------------------------------------

def _families() -> List[Converter]:
    import uer.convert  # noqa: F401  (registers the families)
    return [CONVERTERS.get(name)() for name in CONVERTERS.names()]


def converter_for_model_type(model_type: Optional[str]) -> Converter:
    for conv in _families():
        if conv.model_type == model_type:
            return conv
    known = ", ".join(sorted(c.model_type for c in _families()))
    raise ConfigError(f"config.json: model_type '{model_type}' has no uer converter; supported "
                      f"model types: {known}")


def resolve_architecture(name: str) -> Tuple[Converter, Optional[Variant]]:
    """``name`` is a family ("bert") or a Hugging Face class ("BertForMaskedLM")."""
    families = _families()
    for conv in families:
        if conv.family == name:
            return conv, None
    for conv in families:
        if name in conv.refused:
            raise ConfigError(conv.refused[name])
        for v in conv.variants:
            if v.hf_class == name:
                return conv, v
    classes = [v.hf_class for c in families for v in c.variants]
    raise ConfigError(f"unknown architecture '{name}'; use a family ({', '.join(c.family for c in families)}) "
                      f"or one of the classes {', '.join(classes)}")


# ------------------------------------------------------------------------------------------------
# The uer side
# ------------------------------------------------------------------------------------------------

def head_for_kind(kind: str) -> Optional[str]:
    """The registered head whose declared Hugging Face conversion kind is ``kind`` (None for the
    pretraining / backbone kinds, which have no head)."""
    import uer.tasks  # noqa: F401  (registers the heads)
    from uer.registry import HEADS
    heads = [name for name in HEADS.names() if getattr(HEADS.get(name), "hf_kind", None) == kind]
    if len(heads) > 1:
        raise ConfigError(f"several heads declare the conversion kind '{kind}': {heads}")
    return heads[0] if heads else None


def build_uer_model(config: ModelConfig, kind: str) -> nn.Module:
    """The uer module a converted checkpoint of ``kind`` loads into (strictly)."""
    head = head_for_kind(kind)
    if head is not None:
        from uer.tasks.heads import build_task_model
        return build_task_model(config, head)
    from uer.models import build_model
    return build_model(config, with_target=(kind == "pretrain"))


def _expected_shapes(config: ModelConfig, kind: str) -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        model = build_uer_model(config, kind)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if kind == "backbone":   # a base model's pooler travels as the classifier head's first layer
        shapes.update({"head.linear_1.weight": (config.hidden_size, config.hidden_size),
                       "head.linear_1.bias": (config.hidden_size,)})
    return shapes


def check_uer_state(state: Dict[str, torch.Tensor], config: ModelConfig, kind: str,
                    what: str = "the converted weights") -> None:
    expected = _expected_shapes(config, kind)
    optional = {"head.linear_1.weight", "head.linear_1.bias"} if kind == "backbone" else set()
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: {tuple(state[k].shape)} vs {expected[k]}" for k in expected
              if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        parts = [f"{label}: {', '.join(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if items]
        raise CheckpointError(f"{what} do not fit the uer {kind} model the config builds; " + "; ".join(parts))


def uer_kind(state: Dict[str, torch.Tensor], config: ModelConfig, head: Optional[str] = None
             ) -> Tuple[str, Tuple[str, ...]]:
    """What a uer checkpoint holds: a task model (its head's declared conversion kind), a pretraining
    model (which targets), or a backbone.  ``head``: the head named in the model's .task.json; without
    it, the head is the registered one whose parameters (names and shapes) the checkpoint holds."""
    import uer.tasks  # noqa: F401  (registers the heads)
    from uer.registry import HEADS
    if head is not None:
        kind = getattr(HEADS.get(head, where="the model's .task.json, key 'head'"), "hf_kind", None)
        if kind is None:
            raise ConfigError(f"the checkpoint's head '{head}' has no Hugging Face counterpart to convert to")
        return kind, ()
    held = {k: tuple(v.shape) for k, v in state.items() if k.startswith("head.")}
    if held:
        kinds = set()
        for name in HEADS.names():
            kind = getattr(HEADS.get(name), "hf_kind", None)
            if kind is None:
                continue
            try:
                with torch.device("meta"):
                    shapes = {k: tuple(v.shape) for k, v in build_uer_model(config, kind).state_dict().items()
                              if k.startswith("head.")}
            except (ConfigError, ValueError, TypeError):
                continue
            if shapes == held:
                kinds.add(kind)
        if len(kinds) > 1:
            raise ConfigError(f"cannot tell which task head the checkpoint's head.* parameters belong to "
                              f"(several match: {', '.join(sorted(kinds))}); keep the <model>.task.json "
                              "written by fine-tuning beside it")
        if kinds:
            return kinds.pop(), ()
        # No whole head: a pretraining model or a backbone (whose pooler travels as head.linear_1).
    expected = _expected_shapes(config, "pretrain")
    targets = []
    for name in config.target:
        keys = [k for k in expected if k.startswith(f"target.{name}.")]
        present = [k for k in keys if k in state]
        if present and len(present) < len(keys):
            raise CheckpointError(f"the checkpoint holds only part of target '{name}': missing "
                                  f"{[k for k in keys if k not in state]}")
        if present or not keys:     # a parameter-free target (tied lm head) is always there
            targets.append(name)
    if targets:
        return "pretrain", tuple(targets)
    return "backbone", ()


def _discard(state: Dict[str, torch.Tensor], prefixes: Sequence[str], notes: List[str]):
    if not prefixes:
        return state
    kept = {k: v for k, v in state.items() if not any(k.startswith(p) for p in prefixes)}
    dropped = sorted(set(state) - set(kept))
    unused = [p for p in prefixes if not any(k.startswith(p) for k in dropped)]
    if unused:
        raise ConfigError(f"--discard {' '.join(unused)} matches no parameter of the checkpoint")
    notes.append(f"discarded as asked: {', '.join(dropped)}")
    return kept


# ------------------------------------------------------------------------------------------------
# Conversions
# ------------------------------------------------------------------------------------------------

def hf_to_uer(input_dir: str, architecture: Optional[str] = None, discard: Sequence[str] = (),
              weights_path: Optional[str] = None) -> Converted:
    """Convert a Hugging Face model directory.  ``architecture`` overrides config.json's
    ``architectures`` (a class name such as "BertForPreTraining"); ``discard`` lists name prefixes
    of the Hugging Face weights to drop on purpose; ``weights_path`` names the weights file when the
    directory holds several."""
    hf_config = read_config(input_dir)
    conv = converter_for_model_type(hf_config.get("model_type"))
    declared = (hf_config.get("architectures") or [None])[0]
    hf_class = architecture or declared
    variant = conv.variant(hf_class) if hf_class else conv.variant_for("backbone", ())
    notes: List[str] = []
    state, path = read_weights(input_dir, weights_path)
    state, ignored = table.split_ignored(state, conv.buffers)
    if ignored:
        notes.append(f"buffers, not parameters, not converted: {', '.join(ignored)}")
    state = _discard(state, discard, notes)
    try:
        config, uer_state = _map_hf(conv, variant, hf_config, state, input_dir, notes)
    except CheckpointError as e:
        # Hub configs often name a smaller class than the file holds (bert-base-uncased says
        # BertForMaskedLM but stores the NSP head and pooler too): take the class that maps every
        # tensor, unless the user named one.
        fits = [] if architecture else _fitting_variants(conv, variant, hf_config, state, input_dir)
        if not fits:
            others = ", ".join(v.hf_class for v in conv.variants if v.hf_class != variant.hf_class)
            raise CheckpointError(f"{path} as {variant.hf_class}: {e}. If the file is another "
                                  f"{conv.family} class, name it with --architecture ({others}); to drop "
                                  "parameters on purpose use --discard PREFIX") from None
        variant, config, uer_state, extra = fits[0]
        notes += extra
        named = f"names {declared}" if declared else "names no class (architectures)"
        notes.append(f"config.json {named} but the file holds a whole {variant.hf_class}; converted as "
                     f"{variant.hf_class} (--architecture CLASS with --discard PREFIX drops the rest)")
    check_uer_state(uer_state, config, variant.kind)
    return Converted(uer_state, config, conv.family, variant, hf_config, notes)


def _map_hf(conv: Converter, variant: Variant, hf_config: Dict, state: Dict[str, torch.Tensor],
            input_dir: str, notes: List[str]):
    hf_config = conv.hf_config_from_weights(hf_config, state)
    config = config_from_dict(conv.config_to_uer(hf_config, variant), os.path.join(input_dir, "config.json"))
    prefix = conv.base_prefix
    if variant.prefixed and prefix and state and not any(k.startswith(prefix) for k in state):
        # A file saved from the base model (e.g. the original gpt2 weights): names lack the prefix.
        state = {prefix + k: v for k, v in state.items()}
    elif not variant.prefixed and prefix and state and all(k.startswith(prefix) for k in state):
        # A base-model class read from a head class's file whose head was discarded (--discard).
        state = {k[len(prefix):]: v for k, v in state.items()}
    return config, table.hf_to_uer(conv.rows(config, variant), state, conv.sizes(config, hf_config), notes)


def _fitting_variants(conv: Converter, declared: Variant, hf_config: Dict, state: Dict[str, torch.Tensor],
                      input_dir: str):
    fits = []
    for variant in conv.variants:
        if variant == declared:
            continue
        notes: List[str] = []
        try:
            config, uer_state = _map_hf(conv, variant, hf_config, state, input_dir, notes)
        except (CheckpointError, ConfigError):
            continue
        fits.append((variant, config, uer_state, notes))
    return fits


def uer_to_hf(state: Dict[str, torch.Tensor], config: ModelConfig, architecture: str,
              discard: Sequence[str] = (), special: Optional[Dict[str, int]] = None,
              label_names: Optional[Sequence[str]] = None, head: Optional[str] = None) -> Converted:
    """Convert a uer checkpoint (``state``, built from ``config``) to the Hugging Face ``architecture``
    (a family, the class then chosen by what the checkpoint holds, or a class name).  ``special``:
    token ids for config.json ({"pad_token_id": ...}) read from the vocabulary.  ``label_names``: a
    classifier's or tagger's label names in id order (e.g. NER tags from the label2id saved in
    <model>.task.json) for config.json's id2label/label2id; default LABEL_0, LABEL_1 ...  ``head``: the
    head named in the model's .task.json (else found from the parameters)."""
    if config.vocab_size <= 0:
        raise ConfigError("the uer config has no vocab_size; pass the vocabulary (--vocab_path or "
                          "--spm_model_path) the model was trained with")
    conv, forced = resolve_architecture(architecture)
    conv.check_uer(config)
    notes: List[str] = []
    state = _discard(state, discard, notes)
    kind, targets = uer_kind(state, config, head)
    variant = forced or conv.variant_for(kind, targets)
    if variant.kind != kind or (kind == "pretrain" and tuple(variant.targets) != targets):
        held = f"targets {list(targets)}" if kind == "pretrain" else kind
        raise ConfigError(f"{variant.hf_class} is a {variant.kind} model "
                          f"{list(variant.targets) if variant.targets else ''}, but the checkpoint is a "
                          f"{kind} model with {held}; use --discard to drop parts, or another class")
    if kind == "pretrain":        # the targets the checkpoint holds (others may have been discarded)
        config = dataclasses.replace(config, target=list(targets))
    check_uer_state(state, config, kind, "the checkpoint's weights")
    hf_config = conv.fit_hf_config(conv.config_to_hf(config, variant, special), state)
    if label_names is not None:
        if variant.kind not in ("classifier", "tagger") or len(label_names) != config.labels_num:
            raise ConfigError(f"{len(label_names)} label names given for a {variant.kind} model with "
                              f"labels_num {config.labels_num}; names belong to a classifier or tagger, one per label")
        hf_config.update(labels_config(config.labels_num, label_names))
    hf_state = table.uer_to_hf(conv.rows(config, variant), state, conv.sizes(config, hf_config), notes)
    return Converted(hf_state, config, conv.family, variant, hf_config, notes)


# ------------------------------------------------------------------------------------------------
# ELECTRA: one uer ElectraPretrainer <-> two Hugging Face directories (discriminator, generator)
# ------------------------------------------------------------------------------------------------

# Generator settings that must agree with what ``generator_config`` derives from the discriminator.
_GENERATOR_FIELDS = ("hidden_size", "heads_num", "feedforward_size", "layers_num", "emb_size", "vocab_size",
                     "max_seq_length", "hidden_act", "layernorm_eps", "embedding", "tie_weights",
                     "factorized_embedding_parameterization")


def hf_to_electra_pretrainer(discriminator_dir: str, generator_dir: str) -> Converted:
    """An ElectraForPreTraining directory + an ElectraForMaskedLM directory -> the state of one uer
    ``ElectraPretrainer`` (config ``"pretrainer": "electra"``).  The generator's width must be the
    discriminator's times one factor (``rtd.generator_size_multiplier``); its depth may differ
    (``rtd.generator_layers_num``).  Identical embedding tensors become ``embedding_sharing:
    "shared"``, otherwise ``"none"``."""
    from uer.models.electra import ElectraPretrainer, generator_config
    disc = hf_to_uer(discriminator_dir, "ElectraForPreTraining")
    gen = hf_to_uer(generator_dir, "ElectraForMaskedLM")
    if disc.family != "electra" or gen.family != "electra":
        raise ConfigError(f"{discriminator_dir} and {generator_dir} must both be ELECTRA models "
                          f"(model_type electra); got {disc.family} and {gen.family}")
    d, g = disc.config, gen.config
    emb_keys = sorted(k for k in disc.state if k.startswith("embedding."))
    shared = sorted(k for k in gen.state if k.startswith("embedding.")) == emb_keys and all(
        disc.state[k].shape == gen.state[k].shape and torch.equal(disc.state[k], gen.state[k]) for k in emb_keys)
    rtd = dataclasses.replace(d.rtd, generator="joint", generator_size_multiplier=g.hidden_size / d.hidden_size,
                              generator_layers_num=0 if g.layers_num == d.layers_num else g.layers_num,
                              embedding_sharing="shared" if shared else "none")
    config = dataclasses.replace(d, pretrainer="electra", target=["mlm", "rtd"], rtd=rtd)
    derived = generator_config(config)
    wrong = [f"{k}: generator {getattr(g, k)!r}, derived {getattr(derived, k)!r}" for k in _GENERATOR_FIELDS
             if getattr(g, k) != getattr(derived, k)]
    if wrong:
        raise ConfigError(f"{generator_dir}/config.json does not have the shape uer's ELECTRA pretrainer derives "
                          f"from the discriminator's ({discriminator_dir}) with generator_size_multiplier "
                          f"{rtd.generator_size_multiplier:g}: {'; '.join(wrong)}")
    validate(config, os.path.join(discriminator_dir, "config.json"))
    state = {"discriminator." + k: v for k, v in disc.state.items()}
    state.update({"generator." + k: v for k, v in gen.state.items()})
    with torch.device("meta"):
        model = ElectraPretrainer(config)
    expected = model.state_dict()
    if shared:      # one module: the file's copies are equal, stored under both names as torch does
        state.update({"discriminator." + k: gen.state[k] for k in emb_keys})
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"the assembled ELECTRA pretrainer does not fit the model: missing {missing}, "
                              f"unexpected {unexpected}")
    notes = disc.notes + gen.notes + [f"embedding_sharing: {rtd.embedding_sharing} (the two directories' "
                                      f"embeddings are {'identical' if shared else 'different'})"]
    return Converted(state, config, "electra", disc.variant, disc.hf_config, notes)


def electra_pretrainer_to_hf(state: Dict[str, torch.Tensor], config: ModelConfig,
                             special: Optional[Dict[str, int]] = None) -> Tuple[Converted, Optional[Converted]]:
    """A uer ElectraPretrainer checkpoint -> (discriminator, generator) Hugging Face conversions.
    Transformer encoder: ElectraForPreTraining and ElectraForMaskedLM.  DeBERTa encoder (the DeBERTaV3
    recipe): transformers has no DeBERTa RTD class, so the discriminator is exported as DebertaV2Model
    (the rtd head is left out, with a note) and the generator as DebertaV2ForMaskedLM, or None (with a
    note) when it uses the enhanced mask decoder.  GDES tables are exported as their effective sum
    (what the discriminator computes with)."""
    from uer.models.electra import ElectraPretrainer, discriminator_config, generator_config
    from uer.models.weights import load_weights
    if config.pretrainer != "electra" or config.rtd.generator != "joint":
        raise ConfigError("the config is not an ELECTRA pretrainer with a generator network "
                          "(\"pretrainer\": \"electra\", rtd.generator \"joint\"); convert plain models with uer_to_hf")
    model = ElectraPretrainer(config)
    load_weights(model, state)
    disc_state = model.discriminator_backbone_state()
    gen_config = generator_config(config)
    if config.encoder == "deberta":
        disc = uer_to_hf(disc_state, discriminator_config(config), "DebertaV2Model", special=special)
        disc.notes.append("transformers has no DeBERTa replaced-token-detection class: the discriminator is "
                          "exported as DebertaV2Model, without its rtd head")
        if gen_config.enhanced_mask_decoder:
            disc.notes.append("the generator uses the enhanced mask decoder, which DebertaV2ForMaskedLM lacks: "
                              "it is not exported")
            return disc, None
        return disc, uer_to_hf(model.generator.state_dict(), gen_config, "DebertaV2ForMaskedLM", special=special)
    disc_state.update({k: v for k, v in model.discriminator.state_dict().items() if k.startswith("target.")})
    disc = uer_to_hf(disc_state, discriminator_config(config), "ElectraForPreTraining", special=special)
    gen = uer_to_hf(model.generator.state_dict(), gen_config, "ElectraForMaskedLM", special=special)
    return disc, gen
