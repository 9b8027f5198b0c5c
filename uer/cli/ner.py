"""finetune/run_ner.py and inference/run_ner_infer.py (UER-py flag names): sequence labelling on
``text_a\tlabel`` TSV files whose tokens and BIO tags are space-separated.  The engine flags are
run_classifier's: one process, torchrun with --engine ddp, or DeepSpeed."""

import argparse
from typing import List, Optional

from uer.cli.classifier import add_common_args, add_data_args, add_training_args
from uer.cli.common import cli_entry
from uer.cli.engine_setup import flags_on_command_line
from uer.cli.model_args import add_model_override_args
from uer.registry import TASKS
import uer.tasks  # noqa: F401  (registers the tasks)
from uer.tasks.runner import run_finetune, run_inference


def _finetune_ner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label2id_path", default=None,
                   help='JSON {"O": 0, "B-LOC": 1, ...}; default: built from the train tags ("O" first, '
                        "then sorted) and saved in <output_model_path>.task.json.")


def _infer_ner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label2id_path", default=None,
                   help="Default: the label2id saved in <load_model_path>.task.json by fine-tuning; needed "
                        "for a model converted from Hugging Face.")


def finetune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fine-tune a sequence labeller (NER) on text_a\\tlabel TSV files.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    add_common_args(p, _finetune_ner_args)
    add_training_args(p)
    return p


def infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Tag a text_a TSV file with a fine-tuned sequence labeller; one "
                                "line of space-separated tags per input line.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", required=True)
    p.add_argument("--test_path", required=True, help="TSV with a text_a column (space-separated tokens).")
    p.add_argument("--prediction_path", required=True)
    add_common_args(p, _infer_ner_args)
    add_model_override_args(p)
    return p


@cli_entry
def finetune_main(argv: Optional[List[str]] = None):
    given = flags_on_command_line(finetune_parser, argv)
    return run_finetune(TASKS.get("ner"), finetune_parser().parse_args(argv), given)


@cli_entry
def infer_main(argv: Optional[List[str]] = None):
    return run_inference(TASKS.get("ner"), infer_parser().parse_args(argv))
