"""consolidate_checkpoint.py: a DeepSpeed (ZeRO stage 0-3) checkpoint written by pretrain.py ->
one ordinary uer weights file (fp32) that finetune/ and inference/ load.

    python scripts/consolidate_checkpoint.py --input_path models/out.bin.deepspeed/step500
    # -> models/out.bin-500, checked against models/out.bin.config.json

Runs in one process on the CPU (no launcher, no GPU); it needs memory for the whole model once.
"""

import argparse
import logging
import os
import re
from typing import List, Optional

import torch

from uer.cli.common import cli_entry
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.config import load_config
from uer.errors import ConfigError
from uer.models import build_model
from uer.models.weights import check_weights, save_state

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--input_path", required=True,
                   help="<output_model_path>.deepspeed (its latest checkpoint) or one of its step<N> directories.")
    p.add_argument("--output_model_path", default=None,
                   help="Weights file to write (default: <output_model_path>-N beside the checkpoints; "
                        "a .safetensors name writes safetensors).")
    p.add_argument("--config_path", default=None,
                   help="Model config to check the weights against (default: the <output_model_path>.config.json "
                        "pretrain.py wrote; 'none' skips the check).")
    return p


def default_paths(directory: str, tag: str):
    """``out.bin.deepspeed`` + ``step500`` -> (``out.bin-500``, ``out.bin.config.json``)."""
    from uer.training.engines.deepspeed_engine import DIR_SUFFIX
    prefix = directory[: -len(DIR_SUFFIX)] if directory.endswith(DIR_SUFFIX) else None
    step = re.fullmatch(r"step(\d+)", tag)
    output = f"{prefix}-{step.group(1)}" if prefix and step else None
    return output, (prefix + ".config.json" if prefix else None)


@cli_entry
def main(argv: Optional[List[str]] = None) -> str:
    from uer.training.engines.deepspeed_engine import read_deepspeed_weights, split_checkpoint_path
    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("output_model_path")])
    directory, tag = split_checkpoint_path(args.input_path)
    if tag is None:
        with open(os.path.join(directory, "latest"), encoding="utf-8") as f:
            tag = f.read().strip()
    output, config_path = default_paths(os.path.normpath(directory), tag)
    output = args.output_model_path or output
    if output is None:
        raise ConfigError(f"cannot derive an output name from {args.input_path}; give --output_model_path")
    config_path = args.config_path or config_path
    args.output_model_path = output       # derived from the checkpoint's name: check it too
    refuse_outputs_over_inputs(args, [Output("output_model_path")],
                               {"the run's config": config_path if config_path != "none" else None})
    state = read_deepspeed_weights(directory, tag)
    if config_path and config_path != "none":
        if not os.path.isfile(config_path):
            raise ConfigError(f"model config {config_path} not found; give --config_path (or 'none' to skip "
                              "the check)")
        config = load_config(config_path)
        if config.vocab_size <= 0:
            raise ConfigError(f"{config_path} has no vocab_size: give the resolved <output_model_path>.config.json "
                              "that pretrain.py wrote (or --config_path none)")
        with torch.device("meta"):      # shapes only: no memory for a second copy of the model
            model = build_model(config)
        check_weights(model, state, f"{directory}/{tag}")
    save_state(state, output)
    params = sum(v.numel() for v in state.values())
    logger.info("%s/%s -> %s (%d tensors, %.2fM values, fp32)", directory, tag, output, len(state), params / 1e6)
    return output
