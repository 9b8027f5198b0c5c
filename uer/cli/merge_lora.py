"""scripts/merge_lora.py: fold a LoRA adapter into the full checkpoint it was trained on, as a NEW file.

    python scripts/merge_lora.py --load_model_path models/llama.bin \\
        --lora_pretrained_model_path models/sft_lora.bin --output_model_path models/llama_sft.bin

The adapter's settings come from ``<adapter>.lora.json`` (written by ``pretrain.py --use_lora``);
without that file pass ``--use_lora`` and the ``--lora_r/--lora_alpha/--lora_targets`` it was trained
with.  The base's config (``--config_path``, default the one beside the base) is written beside the
output as ``<output>.config.json``.  The output may not be any input (or the file beside one); it is
written atomically (a temporary file renamed into place), so an interrupted merge leaves nothing.
"""

import argparse
import logging
from typing import Dict, List, Optional

import torch

from uer.cli.adapter_args import add_adapter_args, adapter_from_args, flags_given
from uer.cli.common import cli_entry
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.cli.tool_args import add_config_arg, add_load_model_arg
from uer.config import load_config
from uer.errors import ConfigError
from uer.generation.loading import require_checkpoint
from uer.models.lora import lora_config_path
from uer.models.weights import save_state
from uer.tools.common import config_path_for
from uer.tools.merge_lora import merged_checkpoint
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Merge a LoRA adapter into its base checkpoint (a new weights file).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_load_model_arg(p)
    add_config_arg(p)
    p.add_argument("--output_model_path", required=True,
                   help="The merged weights (a new file; .safetensors for safetensors), config beside it.")
    add_adapter_args(p)
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
    args = build_parser().parse_args(argv)
    if not args.lora_pretrained_model_path:
        raise ConfigError("--lora_pretrained_model_path is required: the adapter to merge into --load_model_path")
    require_checkpoint(args.load_model_path)
    config_path = config_path_for(args.load_model_path, args.config_path)
    refuse_outputs_over_inputs(args, [Output("output_model_path", companions=(".config.json",))],
                               {"the base's config": config_path,
                                "the adapter's settings": lora_config_path(args.lora_pretrained_model_path)})
    lora, adapter_path = adapter_from_args(args, flags_given(build_parser, argv))
    merged = merged_checkpoint(args.load_model_path, load_config(config_path), lora, adapter_path,
                               config_source=config_path)
    save_state(merged, args.output_model_path)
    with open(config_path, encoding="utf-8") as f:
        atomic_write_text(args.output_model_path + ".config.json", f.read())
    logger.info("merged %s (r=%d alpha=%g on %s) into %s -> %s (config %s)", adapter_path, lora.r, lora.alpha,
                ", ".join(lora.targets), args.load_model_path, args.output_model_path, config_path)
    return merged


if __name__ == "__main__":
    main()
