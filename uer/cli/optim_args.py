"""Optimizer and schedule flags beyond the basic ones, shared by pretrain.py and fine-tuning:
UER-py's ``--optimizer adamw|adafactor`` and ``--lr_decay`` (tri_stage), plus the settings UER-py
fixes in code (``--num_cycles``, ``--adafactor_*``).  Flags that the chosen optimizer does not
read are refused when given, naming the one that does."""

import argparse

from uer.errors import ConfigError
from uer.registry import SCHEDULERS
from uer.training.optim import OPTIMIZERS
import uer.training.schedules  # noqa: F401  (fills SCHEDULERS)

ADAM_FLAGS = ("beta1", "beta2", "adam_epsilon")
ADAFACTOR_FLAGS = ("adafactor_clip_threshold", "adafactor_decay_rate")


def scheduler_help() -> str:
    return " | ".join(SCHEDULERS.names()) + " (UER-py's names)"


def add_optimizer_args(group, defined: set) -> None:
    """``defined``: destinations the parser already has (pretrain.py defines --optimizer itself)."""
    if "optimizer" not in defined:
        group.add_argument("--optimizer", default="adamw", choices=list(OPTIMIZERS),
                           help="adamw (torch AdamW) | adafactor (UER-py's: the schedule's lr, no parameter "
                                "scaling, factored second moment; see docs/migrating.md).")
    group.add_argument("--lr_decay", type=float, default=0.5,
                       help="tri_stage: the exponential-decay phase as a fraction of the total steps (UER-py).")
    group.add_argument("--num_cycles", type=int, default=1,
                       help="cosine_with_restarts: number of cosine decays, each restarting at the full "
                            "rate (UER-py fixes 1).")
    group.add_argument("--adafactor_clip_threshold", type=float, default=1.0,
                       help="adafactor: an update's RMS is clipped to this (UER-py: 1.0).")
    group.add_argument("--adafactor_decay_rate", type=float, default=-0.8,
                       help="adafactor: second-moment decay 1 - t^rate (UER-py: -0.8).")


def check_optimizer_flags(args: argparse.Namespace, given: set) -> None:
    """Values in range, and no flag that the chosen optimizer / schedule would silently ignore."""
    if args.optimizer == "adafactor":
        wrong = [f for f in ADAM_FLAGS if f in given]
        if wrong:
            raise ConfigError(f"--{wrong[0]} is an AdamW setting and --optimizer adafactor does not use it "
                              "(UER-py's Adafactor has no first moment and no Adam eps); drop it, or tune "
                              "--adafactor_clip_threshold / --adafactor_decay_rate")
    else:
        wrong = [f for f in ADAFACTOR_FLAGS if f in given]
        if wrong:
            raise ConfigError(f"--{wrong[0]} applies to --optimizer adafactor, but the optimizer is "
                              f"{args.optimizer}; add --optimizer adafactor or drop the flag")
    if "num_cycles" in given and args.scheduler != "cosine_with_restarts":
        raise ConfigError(f"--num_cycles applies to --scheduler cosine_with_restarts, not {args.scheduler}; "
                          "drop it or change the scheduler")
    if not 0.0 <= args.lr_decay <= 1.0:
        raise ConfigError(f"--lr_decay is tri_stage's decay phase as a fraction of the total steps, in [0, 1]; "
                          f"got {args.lr_decay}")
    if args.scheduler == "tri_stage" and args.warmup + args.lr_decay > 1.0 + 1e-9:
        raise ConfigError(f"--scheduler tri_stage: --warmup {args.warmup} + --lr_decay {args.lr_decay} exceed "
                          "the whole run (1.0), so warm-up and decay would overlap; lower one of them")
    if args.num_cycles < 1:
        raise ConfigError(f"--num_cycles must be at least 1, got {args.num_cycles}")
    if not args.adafactor_clip_threshold > 0:
        raise ConfigError(f"--adafactor_clip_threshold must be > 0 (1.0 in UER-py), got {args.adafactor_clip_threshold}")
    if not args.adafactor_decay_rate < 0:
        raise ConfigError(f"--adafactor_decay_rate must be negative (the decay 1 - t^rate then rises to 1; "
                          f"UER-py uses -0.8), got {args.adafactor_decay_rate}")
    SCHEDULERS.get(args.scheduler, where="--scheduler")
