"""finetune/run_cmrc.py and inference/run_cmrc_infer.py (UER-py flag names): extractive question
answering on CMRC 2018 / SQuAD-style JSON.  The engine flags are run_classifier's: one process,
torchrun with --engine ddp, or DeepSpeed."""

import argparse
from typing import List, Optional

from uer.cli.common import add_tokenizer_args, cli_entry
from uer.cli.engine_setup import add_engine_args, flags_on_command_line
from uer.cli.model_args import add_model_override_args
from uer.tasks.mrc import DEFAULTS, run_mrc_finetune, run_mrc_inference


def _common(p: argparse.ArgumentParser, saved: bool) -> None:
    # The same flags as run_classifier's, without --labels_num and --pooling.
    p.add_argument("--config_path", default=None,
                   help="Model config; default: the config saved beside the model weights.")
    add_tokenizer_args(p)
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens per window; default " + ("what the model was fine-tuned with, else " if saved else "")
                   + "min(512, the model's max_seq_length).")
    p.add_argument("--batch_size", type=int, default=32)
    where = "default: what the model was fine-tuned with, else {}" if saved else "default {}"
    p.add_argument("--doc_stride", type=int, default=None,
                   help="Context tokens between the starts of two windows over a long context; "
                        + where.format(DEFAULTS["doc_stride"]) + ".")
    p.add_argument("--max_query_length", type=int, default=None,
                   help="Question tokens kept; " + where.format(DEFAULTS["max_query_length"]) + ".")
    p.add_argument("--max_answer_length", type=int, default=None,
                   help="Longest answer, in tokens (characters); " + where.format(DEFAULTS["max_answer_length"]) + ".")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--fp16", action="store_true", help="UER-py flag: same as --precision fp16.")
    p.add_argument("--device", default="auto")


def finetune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fine-tune a span extractor on CMRC 2018 / SQuAD-style JSON.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--output_model_path", default="models/finetuned_model.bin")
    p.add_argument("--train_path", required=True)
    p.add_argument("--dev_path", required=True)
    p.add_argument("--test_path", default=None, help="Scored like the dev file (needs real answers).")
    _common(p, saved=False)
    p.add_argument("--epochs_num", type=int, default=3)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--scheduler", default="linear")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--report_steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--accumulation_steps", type=int, default=1, help="Micro-batches per optimizer step.")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--adam_epsilon", type=float, default=1e-6)
    p.add_argument("--poly_power", type=float, default=1.0, help="Power of the polynomial schedule.")
    p.add_argument("--lr_end_ratio", type=float, default=0.0, help="Final lr / lr for polynomial.")
    add_engine_args(p)
    add_model_override_args(p)
    return p


def infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Answer the questions of a SQuAD-style JSON file with a fine-tuned "
                                "span extractor; writes JSON {question id: answer}.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", required=True)
    p.add_argument("--test_path", required=True, help="SQuAD-style JSON; answers are not needed.")
    p.add_argument("--prediction_path", required=True)
    _common(p, saved=True)
    add_model_override_args(p)
    return p


@cli_entry
def finetune_main(argv: Optional[List[str]] = None):
    given = flags_on_command_line(finetune_parser, argv)
    return run_mrc_finetune(finetune_parser().parse_args(argv), given)


@cli_entry
def infer_main(argv: Optional[List[str]] = None):
    return run_mrc_inference(infer_parser().parse_args(argv))
