"""scripts/dynamic_vocab_adapter.py (UER-py's scripts/dynamic_vocab_adapter.py): a checkpoint
adapted to a new vocabulary (see uer/tools/vocab_adapter.py for what is copied and initialised).

    python scripts/dynamic_vocab_adapter.py --old_model_path models/google_zh_model.bin \
        --old_vocab_path models/google_zh_vocab.txt --new_vocab_path models/task_vocab.txt \
        --new_model_path models/task_model.bin

The old model's config (beside it, or --config_path) is written beside the new model with the new
vocab_size (``<new_model_path>.config.json``), so the result loads strictly with the new vocabulary.
"""

import argparse
import logging
from typing import Dict, List, Optional

import torch

from uer.cli.common import cli_entry
from uer.cli.output_paths import Output, refuse_outputs_over_inputs
from uer.config import find_config_beside, save_config
from uer.data.vocab import Vocab
from uer.models.weights import read_weights, save_state
from uer.tools.common import load_model_config
from uer.tools.vocab_adapter import adapt_state

logger = logging.getLogger("uer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Adapt a checkpoint's vocabulary-sized tensors to a new vocabulary.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--old_model_path", required=True, help="The checkpoint to adapt.")
    p.add_argument("--old_vocab_path", required=True, help="The vocabulary it was trained with.")
    p.add_argument("--new_vocab_path", required=True, help="The new vocabulary.")
    p.add_argument("--new_model_path", required=True, help="Where the adapted checkpoint goes.")
    p.add_argument("--config_path", default=None,
                   help="The old model's config; default: the config saved beside --old_model_path.")
    p.add_argument("--seed", type=int, default=7, help="Seeds the N(0, 0.02) rows of new tokens.")
    return p


@cli_entry
def main(argv: Optional[List[str]] = None) -> Dict[str, torch.Tensor]:
    args = build_parser().parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("new_model_path", companions=(".config.json",))],
                               {"the config beside --old_model_path": find_config_beside(args.old_model_path)})
    old_vocab, new_vocab = Vocab.load(args.old_vocab_path), Vocab.load(args.new_vocab_path)
    config, _ = load_model_config(args.old_model_path, args.config_path, len(old_vocab),
                                            args.old_vocab_path)
    config_out = args.new_model_path + ".config.json"
    state = read_weights(args.old_model_path)
    adapted = adapt_state(state, config, old_vocab, new_vocab, source=args.old_model_path, seed=args.seed)
    shared = sum(1 for t in dict.fromkeys(new_vocab.tokens) if t in old_vocab)
    config.vocab_size = len(new_vocab)
    save_state(adapted, args.new_model_path)
    save_config(config, config_out)
    logger.info("new vocabulary: %d tokens, %d kept from the old one (%d), %d new -> %s (config %s)",
                len(new_vocab), shared, len(old_vocab), len(new_vocab) - shared, args.new_model_path, config_out)
    return adapted


if __name__ == "__main__":
    main()
