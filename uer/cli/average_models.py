"""scripts/average_models.py (UER-py's scripts/average_models.py): the mean of several checkpoints.

    python scripts/average_models.py --model_list_path models/review.bin-4000 models/review.bin-5000 \
        --output_model_path models/review_avg.bin

The checkpoints must have the same keys and shapes; the average is taken in float32 and saved in
each tensor's original dtype (safetensors when the output name ends in .safetensors).  The config
found beside the first checkpoint is written beside the output (``<output>.config.json``).
"""

import argparse
import logging
from typing import Dict, List, Optional

import torch

from uer.cli.common import cli_entry
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.config import find_config_beside
from uer.models.weights import save_state
from uer.tools.average_models import average_checkpoints
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Average the weights of several checkpoints of one model.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model_list_path", nargs="+", required=True, help="Checkpoints to average.")
    p.add_argument("--output_model_path", required=True, help="Where the averaged weights go.")
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
    args = build_parser().parse_args(argv)
    config = find_config_beside(args.model_list_path[0])
    refuse_outputs_over_inputs(args, [Output("output_model_path", companions=(".config.json",))],
                               {"the config beside the first checkpoint": config})
    config_out = args.output_model_path + ".config.json"
    averaged = average_checkpoints(args.model_list_path)
    save_state(averaged, args.output_model_path)
    if config:
        with open(config, encoding="utf-8") as f:
            atomic_write_text(config_out, f.read())
    logger.info("averaged %d checkpoints (%d tensors) -> %s%s", len(args.model_list_path), len(averaged),
                args.output_model_path, f" (config {config} -> {config_out})" if config else "")
    return averaged


if __name__ == "__main__":
    main()
