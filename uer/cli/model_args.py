"""Command-line overrides of model config keys, as in UER-py: ``--hidden_size 256``,
``--embedding word pos``, ``--tie_weights`` ... win over the JSON config."""

import argparse
import dataclasses
import typing
from typing import Dict, Optional

import uer.modules  # noqa: F401  (load_config checks module names against the filled registries)
from uer.cli.common import str_to_bool
from uer.config import MaskingConfig, ModelConfig, RtdConfig, find_config_beside, load_config
from uer.errors import ConfigError

MASKING_FLAGS = {"mask_prob": float, "whole_word_masking": bool, "span_masking": bool,
                 "span_geo_prob": float, "span_max_length": int}


RTD_FLAG_PREFIX = "rtd_"     # --rtd_<key> sets the nested "rtd": {"<key>": ...} (ELECTRA family)


def add_model_override_args(parser: argparse.ArgumentParser, masking: bool = False) -> None:
    """One ``--key`` per ModelConfig field not already defined by the parser (default: not given).
    ``masking``: a pretraining parser, which also gets the masking flags and ``--rtd_<key>`` for
    every field of the "rtd" section (e.g. ``--rtd_generator_checkpoint``)."""
    group = parser.add_argument_group("model config overrides (win over --config_path)")
    taken = {a.dest for a in parser._actions}
    hints = typing.get_type_hints(ModelConfig)
    for f in dataclasses.fields(ModelConfig):
        if f.name in taken or dataclasses.is_dataclass(hints[f.name]):
            continue
        tp = hints[f.name]
        if tp is bool:
            group.add_argument(f"--{f.name}", type=str_to_bool, nargs="?", const=True, default=argparse.SUPPRESS,
                               help="true/false (the flag alone means true)")
        elif typing.get_origin(tp) in (list, typing.List):
            group.add_argument(f"--{f.name}", nargs="+", default=argparse.SUPPRESS)
        else:
            group.add_argument(f"--{f.name}", type=tp, default=argparse.SUPPRESS)
    if masking:
        mg = parser.add_argument_group("masking (collator; default: the dataset's preprocess flags, then the config)")
        mg.add_argument("--dynamic_masking", action="store_true",
                        help="Accepted for UER-py compatibility: uer always masks dynamically.")
        mg.add_argument("--mask_prob", type=float, default=argparse.SUPPRESS)
        mg.add_argument("--whole_word_masking", type=str_to_bool, nargs="?", const=True, default=argparse.SUPPRESS,
                        help="Flag alone = true; 'false' switches off what preprocess.py recorded.")
        mg.add_argument("--span_masking", type=str_to_bool, nargs="?", const=True, default=argparse.SUPPRESS)
        mg.add_argument("--span_geo_prob", type=float, default=argparse.SUPPRESS)
        mg.add_argument("--span_max_length", type=int, default=argparse.SUPPRESS)
        rg = parser.add_argument_group("rtd (ELECTRA-family pretrainers): win over the config's \"rtd\" keys")
        for f, tp in typing.get_type_hints(RtdConfig).items():
            if tp is bool:
                rg.add_argument(f"--{RTD_FLAG_PREFIX}{f}", type=str_to_bool, nargs="?", const=True,
                                default=argparse.SUPPRESS)
            else:
                rg.add_argument(f"--{RTD_FLAG_PREFIX}{f}", type=tp, default=argparse.SUPPRESS)


def model_overrides(args: argparse.Namespace) -> Dict[str, object]:
    names = {f.name for f in dataclasses.fields(ModelConfig)} | set(MASKING_FLAGS)
    overrides = {k: v for k, v in vars(args).items() if k in names and k not in ("masking", "rtd")
                 and v is not None}
    rtd_keys = {f.name for f in dataclasses.fields(RtdConfig)}
    rtd = {k[len(RTD_FLAG_PREFIX):]: v for k, v in vars(args).items()
           if k.startswith(RTD_FLAG_PREFIX) and k[len(RTD_FLAG_PREFIX):] in rtd_keys and v is not None}
    if rtd:
        overrides["rtd"] = rtd
    return overrides


def find_config_for(weights_path: Optional[str]) -> Optional[str]:
    """The config saved beside a checkpoint (see ``uer.config.find_config_beside``)."""
    return find_config_beside(weights_path)


def resolve_model_config(args: argparse.Namespace, weights_path: Optional[str] = None) -> ModelConfig:
    path = args.config_path or find_config_for(weights_path)
    if path is None:
        raise ConfigError("--config_path is required (e.g. models/bert/base.json); no config was found "
                          f"beside {weights_path or 'the model'}")
    return load_config(path, model_overrides(args))


def set_vocab_size(config: ModelConfig, vocab_size: int, source: str) -> None:
    if config.vocab_size and config.vocab_size != vocab_size:
        raise ConfigError(f"the model config says vocab_size {config.vocab_size} but the vocabulary "
                          f"{source} has {vocab_size} tokens; use the vocabulary the model was trained "
                          "with, or remove vocab_size from the config")
    config.vocab_size = vocab_size


__all__ = ["add_model_override_args", "model_overrides", "resolve_model_config", "find_config_for",
           "set_vocab_size", "MaskingConfig"]
