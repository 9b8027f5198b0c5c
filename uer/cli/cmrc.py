"""finetune/run_cmrc.py and inference/run_cmrc_infer.py (UER-py flag names): extractive question
answering on CMRC 2018 / SQuAD-style JSON.  The flags are run_classifier's (engine flags included:
one process, torchrun with --engine ddp, or DeepSpeed) plus the window settings, without
--labels_num/--pooling; --seq_length defaults to min(512, the model's max_seq_length)."""

import argparse
from typing import List, Optional

from uer.cli.classifier import add_common_args, add_data_args, add_training_args
from uer.cli.common import cli_entry
from uer.cli.engine_setup import flags_on_command_line
from uer.cli.model_args import add_model_override_args
from uer.tasks.mrc import DEFAULTS, run_mrc_finetune, run_mrc_inference


def _window_args(p: argparse.ArgumentParser, saved: bool) -> None:
    where = "default: what the model was fine-tuned with, else {}" if saved else "default {}"
    p.add_argument("--doc_stride", type=int, default=None,
                   help="Context tokens between the starts of two windows over a long context; "
                        + where.format(DEFAULTS["doc_stride"]) + ".")
    p.add_argument("--max_query_length", type=int, default=None,
                   help="Question tokens kept; " + where.format(DEFAULTS["max_query_length"]) + ".")
    p.add_argument("--max_answer_length", type=int, default=None,
                   help="Longest answer, in tokens (characters); " + where.format(DEFAULTS["max_answer_length"]) + ".")


def finetune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fine-tune a span extractor on CMRC 2018 / SQuAD-style JSON "
                                "(--test_path is scored like the dev file, so it needs real answers). "
                                "--seq_length defaults to min(512, the model's max_seq_length).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    add_common_args(p, lambda q: _window_args(q, saved=False))
    add_training_args(p)
    return p


def infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Answer the questions of a SQuAD-style JSON file with a fine-tuned "
                                "span extractor; writes JSON {question id: answer}. Window settings and "
                                "--seq_length default to the model's .task.json.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", required=True)
    p.add_argument("--test_path", required=True, help="SQuAD-style JSON; answers are not needed.")
    p.add_argument("--prediction_path", required=True)
    add_common_args(p, lambda q: _window_args(q, saved=True))
    add_model_override_args(p)
    return p


@cli_entry
def finetune_main(argv: Optional[List[str]] = None):
    given = flags_on_command_line(finetune_parser, argv)
    return run_mrc_finetune(finetune_parser().parse_args(argv), given)


@cli_entry
def infer_main(argv: Optional[List[str]] = None):
    return run_mrc_inference(infer_parser().parse_args(argv))
