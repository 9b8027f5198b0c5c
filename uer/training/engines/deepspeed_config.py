"""Reconcile a DeepSpeed JSON config with pretrain.py's flags (no DeepSpeed import needed).

For each setting both can express — micro-batch size, gradient accumulation, clipping, the
optimizer's lr / betas / eps / weight decay, precision — there is one value in the end:

* the DeepSpeed config omits it or says ``"auto"``  -> our flag's value is written into it;
* the DeepSpeed config sets it, the flag was not given -> the DeepSpeed value is taken (and logged);
* both set it and they differ                       -> ConfigError naming both values.

The learning-rate schedule always comes from ``--scheduler``/``--warmup`` (one schedule, the same
under every engine), so a DeepSpeed ``scheduler`` section is refused rather than silently ignored.
Without an ``optimizer`` section our AdamW (with its no-decay parameter groups) is handed to
DeepSpeed; with optimizer offload DeepSpeed needs its own CPU Adam, so a section is written from
the flags.
"""

import copy
import json
import logging
import math
import os
from typing import Iterable, Set, Tuple

from uer.errors import ConfigError
from uer.utils import read_json_object

logger = logging.getLogger("uer")

AUTO = "auto"
NEVER = 2 ** 31 - 1     # steps_per_print: our own log already reports every --report_steps


def read_deepspeed_config(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"--deepspeed_config {path} does not exist (shipped configs: models/deepspeed/*.json)")
    return read_json_object(path, f"--deepspeed_config {path}")


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def precision_of(config: dict) -> str:
    for key, name in (("bf16", "bf16"), ("bfloat16", "bf16"), ("fp16", "fp16")):
        if isinstance(config.get(key), dict) and config[key].get("enabled", False):
            return name
    return "fp32"


def offloads_optimizer(config: dict) -> bool:
    offload = config.get("zero_optimization", {}).get("offload_optimizer") or {}
    return offload.get("device", "none") not in ("none", None)


def zero_stage(config: dict) -> int:
    return int(config.get("zero_optimization", {}).get("stage", 0))


class _Reconciler:
    def __init__(self, config: dict, args, given: Set[str], source: str):
        self.config, self.args, self.given, self.source = config, args, given, source

    def one(self, path: Tuple[str, ...], flags: Iterable[str], ours, adopt) -> None:
        """``path``: keys into the DeepSpeed config; ``flags``: our flag(s) for it; ``ours``: their
        value; ``adopt``: sets our value from the DeepSpeed one."""
        flags = list(flags)
        node = self.config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        key, where = path[-1], ".".join(path)
        theirs = node.get(key, AUTO)
        if theirs == AUTO:
            node[key] = list(ours) if isinstance(ours, tuple) else ours
        elif _same(theirs, ours):
            return
        elif any(f in self.given for f in flags):
            shown = " ".join(f"--{f} {getattr(self.args, f)}" for f in flags)
            raise ConfigError(f"{shown} contradicts {where} = {json.dumps(theirs)} in {self.source}; "
                              f"make them agree, or drop one (a missing or \"auto\" DeepSpeed value is "
                              "filled from the flag, a flag left out takes the DeepSpeed value)")
        else:
            adopt(theirs)
            logger.info("%s from %s: %s = %s", "/".join("--" + f for f in flags), self.source, where,
                        json.dumps(theirs))


def resolve_deepspeed_config(config: dict, args, given: Set[str], world_size: int,
                             source: str = "the DeepSpeed config") -> Tuple[dict, bool]:
    """Returns (the config to hand DeepSpeed, whether our own optimizer is used).  ``args`` is
    updated in place with values adopted from the config; ``given`` names the flags the user set."""
    config = copy.deepcopy(config)
    r = _Reconciler(config, args, given, source)

    def setter(name, cast):
        return lambda v: setattr(args, name, cast(v))

    r.one(("train_micro_batch_size_per_gpu",), ["batch_size"], args.batch_size, setter("batch_size", int))
    r.one(("gradient_accumulation_steps",), ["accumulation_steps"], args.accumulation_steps,
          setter("accumulation_steps", int))
    r.one(("gradient_clipping",), ["max_grad_norm"], float(args.max_grad_norm), setter("max_grad_norm", float))
    global_batch = args.batch_size * args.accumulation_steps * world_size
    if config.get("train_batch_size", AUTO) == AUTO:
        config["train_batch_size"] = global_batch
    elif int(config["train_batch_size"]) != global_batch:
        raise ConfigError(f"train_batch_size = {config['train_batch_size']} in {source}, but --batch_size "
                          f"{args.batch_size} x --accumulation_steps {args.accumulation_steps} x {world_size} "
                          f"processes = {global_batch}; set it to \"auto\" or make them agree")

    if "scheduler" in config:
        raise ConfigError(f"{source} has a \"scheduler\" section; the learning-rate schedule comes from "
                          "--scheduler/--warmup/--total_steps under every engine — remove the section")

    _reconcile_precision(config, args, given, source)
    if "activation_checkpointing" in config and not getattr(args, "activation_checkpointing", False):
        # DeepSpeed's section only configures deepspeed.checkpointing, which no uer module calls:
        # a user who put it there expects recomputation and would otherwise get none, silently.
        logger.warning("%s has an \"activation_checkpointing\" section, which configures DeepSpeed's own "
                       "checkpointing API that uer does not use: layers are NOT recomputed; pass "
                       "--activation_checkpointing for that", source)

    uses_own_optimizer = "optimizer" not in config and not offloads_optimizer(config)
    if "optimizer" not in config and not uses_own_optimizer:
        config["optimizer"] = {"type": "AdamW", "params": {}}      # offload: DeepSpeed's CPU Adam
    if "optimizer" in config:
        opt = config["optimizer"]
        kind = str(opt.get("type", "")).lower()
        params = opt.setdefault("params", {})
        if kind not in ("adamw", "adam") or (kind == "adam" and params.get("adam_w_mode", True) is False):
            raise ConfigError(f"optimizer type {json.dumps(opt.get('type'))} in {source}: pretrain.py trains "
                              "with AdamW (--optimizer adamw); use \"AdamW\" or remove the section")
        r.one(("optimizer", "params", "lr"), ["learning_rate"], args.learning_rate,
              setter("learning_rate", float))
        r.one(("optimizer", "params", "betas"), ["beta1", "beta2"], (args.beta1, args.beta2),
              lambda v: (setattr(args, "beta1", float(v[0])), setattr(args, "beta2", float(v[1]))))
        r.one(("optimizer", "params", "eps"), ["adam_epsilon"], args.adam_epsilon, setter("adam_epsilon", float))
        r.one(("optimizer", "params", "weight_decay"), ["weight_decay"], args.weight_decay,
              setter("weight_decay", float))
    else:
        config.setdefault("zero_allow_untested_optimizer", True)   # torch.optim.AdamW under ZeRO
    config.setdefault("steps_per_print", NEVER)
    _refuse_auto(config, source)
    return config, uses_own_optimizer


def _reconcile_precision(config: dict, args, given: Set[str], source: str) -> None:
    sections = [k for k in ("bf16", "bfloat16", "fp16") if isinstance(config.get(k), dict)]
    decided = any(config[k].get("enabled", False) != AUTO for k in sections)
    if decided:
        for k in sections:
            if config[k].get("enabled") == AUTO:
                config[k]["enabled"] = False
        theirs = precision_of(config)
        if theirs == args.precision:
            return
        if "precision" in given:
            raise ConfigError(f"--precision {args.precision} contradicts {source}, which trains in {theirs} "
                              f"(its {'/'.join(sections)} section); make them agree or drop --precision")
        logger.info("--precision from %s: %s", source, theirs)
        args.precision = theirs
    else:          # no section, or "enabled": "auto": --precision decides
        for k in sections:
            config[k]["enabled"] = args.precision == ("bf16" if k == "bfloat16" else k)
        if args.precision != "fp32" and precision_of(config) != args.precision:
            config[args.precision] = {"enabled": True}


def _refuse_auto(node, source: str, where: str = "") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _refuse_auto(v, source, f"{where}.{k}" if where else k)
    elif node == AUTO:
        raise ConfigError(f"{where} = \"auto\" in {source}: pretrain.py has no flag to fill it from; "
                          "give it a value")
