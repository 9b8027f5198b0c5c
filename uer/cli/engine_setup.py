"""Engine selection shared by pretrain.py and the fine-tuning scripts: the flags, joining the
process group, reconciling a DeepSpeed config with the flags, building the model (partitioned under
ZeRO-3) and handing it to the chosen engine."""

import argparse
import logging
from typing import Callable, List, Optional

from uer.errors import ConfigError
from uer.training.device import pick_device
from uer.training.engine_factory import EngineFactory, OptimizerSettings
from uer.training.engines import ENGINES


def add_engine_args(p: argparse.ArgumentParser) -> None:
    e = p.add_argument_group("engine: one process, DDP under torchrun, or DeepSpeed")
    e.add_argument("--engine", default="local", choices=list(ENGINES),
                   help="local: one process (CPU or one GPU); ddp: one process per device under torchrun; "
                        "deepspeed: ZeRO stages 0-3, offload, bf16/fp16 (needs --deepspeed_config).")
    e.add_argument("--deepspeed", action="store_true", help="UER-py flag: same as --engine deepspeed.")
    e.add_argument("--deepspeed_config", default=None,
                   help="DeepSpeed JSON config, e.g. models/deepspeed/zero2.json.  Batch size, accumulation, "
                        "clipping, optimizer and precision settings are reconciled with the flags: missing "
                        "or \"auto\" values are filled from them, contradictions are errors.")
    e.add_argument("--local_rank", type=int, default=None,
                   help="Set by the deepspeed launcher; the LOCAL_RANK environment variable is what is used.")
    e.add_argument("--compile", nargs="?", const="default", default="", metavar="MODE",
                   help="torch.compile the model (its losses included) before training; MODE: default (when "
                        "the flag has no value), reduce-overhead (CUDA graphs, fixed shapes only), max-autotune, "
                        "max-autotune-no-cudagraphs.  The first steps are slow while it compiles.")


def flags_on_command_line(make_parser: Callable[[], argparse.ArgumentParser], argv: Optional[List[str]]) -> set:
    """The destinations of the flags actually on the command line (not defaults)."""
    probe = make_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def setup_engine(args, given: set):
    """Join the process group (ddp, deepspeed) and reconcile the DeepSpeed config with the flags —
    before anything is built, since the batch size and precision may come from that config.
    Returns (device, world size, DeepSpeed config or None, whether our own optimizer is used)."""
    if args.deepspeed:
        args.engine = "deepspeed"
    if args.deepspeed_config and args.engine != "deepspeed":
        raise ConfigError("--deepspeed_config is given but the engine is " + args.engine +
                          "; add --deepspeed (or --engine deepspeed)")
    if args.engine == "local":
        return pick_device(args.device), 1, None, True
    if args.engine == "ddp":
        import torch.distributed as dist
        from uer.training.distributed import init_process_group
        device = init_process_group("ddp", args.device)
        world_size = dist.get_world_size()
        ds_config, own_optimizer = None, True
    else:
        from uer.training.engines.deepspeed_config import read_deepspeed_config, resolve_deepspeed_config
        if not args.deepspeed_config:
            raise ConfigError("--engine deepspeed needs --deepspeed_config, e.g. models/deepspeed/zero2.json")
        raw = read_deepspeed_config(args.deepspeed_config)     # before starting processes talking
        from uer.training.engines.deepspeed_engine import init_deepspeed_distributed
        device, world_size = init_deepspeed_distributed()
        _quiet_unless_main()
        ds_config, own_optimizer = resolve_deepspeed_config(raw, args, given, world_size,
                                                            source=args.deepspeed_config)
        if getattr(args, "optimizer", "adamw") != "adamw" and not own_optimizer:
            raise ConfigError(f"--optimizer {args.optimizer}: {args.deepspeed_config} has DeepSpeed build the "
                              "optimizer (an \"optimizer\" section, or optimizer offload, which needs DeepSpeed's "
                              "CPU Adam); remove both to train with our Adafactor under ZeRO, or use --optimizer adamw")
    _quiet_unless_main()
    return device, world_size, ds_config, own_optimizer


def _quiet_unless_main() -> None:
    """One log, from rank 0; warnings and errors from every rank."""
    import torch.distributed as dist
    if dist.get_rank() != 0:
        logging.getLogger("uer").setLevel(logging.WARNING)


def engine_factory(args, given: set) -> EngineFactory:
    """``setup_engine`` and the optimizer flags in one object for the library's procedures."""
    device, world_size, ds_config, own_optimizer = setup_engine(args, given)
    return EngineFactory(args.engine, device, world_size, OptimizerSettings.from_namespace(args), ds_config,
                         own_optimizer)


def model_construction(args, ds_config):
    """Where the model is built: partitioned from the start under ZeRO-3, normally otherwise."""
    return EngineFactory(args.engine, None, 1, OptimizerSettings(), ds_config).construction()


def build_engine(args, model, device, ds_config, own_optimizer: bool):
    """``args`` carries the optimizer and schedule settings (learning_rate, weight_decay, beta1,
    beta2, adam_epsilon, scheduler, warmup as a fraction of total_steps, poly_power, lr_end_ratio,
    precision, max_grad_norm, accumulation_steps)."""
    factory = EngineFactory(args.engine, device, 1, OptimizerSettings.from_namespace(args), ds_config, own_optimizer)
    return factory.build(model, args.total_steps)
