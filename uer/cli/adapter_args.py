"""A trained LoRA adapter applied on top of a full checkpoint, for the tools that only read a model
(scripts/generate_lm.py, scripts/generate_seq2seq.py, scripts/merge_lora.py).

The flags are the fine-tuning scripts' (uer/cli/lora_args.py).  The adapter is
``--lora_pretrained_model_path``; its settings come from the ``<adapter>.lora.json`` that
``pretrain.py --use_lora`` writes beside it (for a step checkpoint ``<out>-N``: ``<out>.lora.json``), so
``--use_lora`` and the ``--lora_*`` values need not be repeated — any that are given must agree with
that file.  Without the file (an adapter from elsewhere) the flags say how it was trained:
``--use_lora`` and the ``--lora_r/--lora_alpha/--lora_targets/--dylora`` it was trained with.
"""

import argparse
import logging
import os
import re
from typing import Callable, List, Optional, Tuple

from uer.cli.lora_args import add_lora_args, freeze_prefixes_from_args, lora_config_from_args
from uer.errors import ConfigError
from uer.models.lora import LoraConfig, load_lora_config, lora_config_path

logger = logging.getLogger("uer")

# flag -> the LoraConfig field it sets (dropout is recorded but changes nothing outside training)
_SETTINGS = {"lora_r": "r", "lora_alpha": "alpha", "lora_targets": "targets", "dylora": "dynamic",
             "lora_min_r": "min_r"}


def add_adapter_args(p: argparse.ArgumentParser) -> None:
    add_lora_args(p)


def flags_given(make_parser: Callable[[], argparse.ArgumentParser], argv: Optional[List[str]]) -> set:
    """The destinations of the flags actually on the command line (a default typed out counts too)."""
    probe = make_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def adapter_from_args(args, given: set) -> Optional[Tuple[LoraConfig, str]]:
    """(LoRA settings, adapter path) the flags ask for, or None without --lora_pretrained_model_path.
    ``given``: the flags on the command line (``flags_given``), checked against the adapter's record."""
    path = args.lora_pretrained_model_path
    if freeze_prefixes_from_args(args):
        raise ConfigError("--freeze_prefixes only matters when training; drop it here")
    if not path:
        if args.use_lora:
            raise ConfigError("--use_lora needs the trained adapter here: pass --lora_pretrained_model_path "
                              "(the weights file a --use_lora run wrote) on top of --load_model_path")
        return None
    if not os.path.isfile(path):
        raise ConfigError(f"--lora_pretrained_model_path {path} does not exist")
    record_path = lora_config_path(path)
    if not os.path.isfile(record_path):        # a step checkpoint <out>-N: the run's <out>.lora.json
        record_path = lora_config_path(re.sub(r"-\d+$", "", path))
    if not os.path.isfile(record_path):
        if not args.use_lora:
            raise ConfigError(f"--lora_pretrained_model_path {path} has no {lora_config_path(path)} beside it saying how it "
                              "was trained; add --use_lora with the --lora_r/--lora_alpha/--lora_targets (and "
                              "--dylora) it was trained with")
        return lora_config_from_args(args), path
    recorded, _ = load_lora_config(record_path)
    for flag, field in _SETTINGS.items():
        if flag not in given:
            continue                   # the record decides
        value = getattr(args, flag)
        wanted = tuple(lora_config_from_args(_with_lora(args)).targets) if flag == "lora_targets" else value
        if wanted != getattr(recorded, field):
            shown = ",".join(wanted) if flag == "lora_targets" else value
            raise ConfigError(f"--{flag} {shown} contradicts {record_path}, which records {field} = "
                              f"{getattr(recorded, field)!r} for the adapter {path}; drop --{flag} (the adapter's "
                              "settings are read from that file)")
    logger.info("LoRA adapter %s: r=%d alpha=%g on %s (settings from %s)", path, recorded.r, recorded.alpha,
                ", ".join(recorded.targets), record_path)
    return recorded, path


def _with_lora(args):
    copy = argparse.Namespace(**vars(args))
    copy.use_lora, copy.lora_pretrained_model_path = True, None
    return copy
