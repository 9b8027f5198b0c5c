"""finetune/run_classifier.py and inference/run_classifier_infer.py (UER-py flag names).

Fine-tuning runs on one process, under torchrun with --engine ddp, or on DeepSpeed (ZeRO-2/3 for
models that do not fit one device):
    deepspeed finetune/run_classifier.py --deepspeed --deepspeed_config models/deepspeed/zero3.json ...
"""

import argparse
from typing import Callable, List, Optional

from uer.cli.common import add_tokenizer_args, cli_entry
from uer.cli.engine_setup import add_engine_args, flags_on_command_line
from uer.cli.model_args import add_model_override_args
from uer.registry import TASKS
import uer.tasks  # noqa: F401  (registers the tasks)
from uer.tasks.runner import run_finetune, run_inference


def add_common_args(p: argparse.ArgumentParser, task_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Flags of every fine-tuning and inference script (run_classifier, run_ner ...); ``task_args``
    adds the task's own after the batch size."""
    p.add_argument("--config_path", default=None,
                   help="Model config; default: the config saved beside the model weights.")
    add_tokenizer_args(p)
    p.add_argument("--seq_length", type=int, default=None,
                   help="Tokens per example after truncation; default min(128, the model's max_seq_length).")
    p.add_argument("--batch_size", type=int, default=32)
    task_args(p)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--fp16", action="store_true", help="UER-py flag: same as --precision fp16.")
    p.add_argument("--device", default="auto")


def _classifier_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels_num", type=int, default=None, help="Default: inferred from the train labels.")
    p.add_argument("--pooling", default=None, choices=["first", "last", "mean", "max"],
                   help="Fine-tuning default: first; inference default: what the model was fine-tuned with.")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The model and data paths of a fine-tuning script."""
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--output_model_path", default="models/finetuned_model.bin")
    p.add_argument("--train_path", required=True)
    p.add_argument("--dev_path", required=True)
    p.add_argument("--test_path", default=None)


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Optimisation, engine and model-override flags of a fine-tuning script."""
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


def finetune_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fine-tune a classifier on label\\ttext_a[\\ttext_b] TSV files.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    add_common_args(p, _classifier_args)
    add_training_args(p)
    return p


def infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Predict labels with a fine-tuned classifier.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", required=True)
    p.add_argument("--test_path", required=True, help="TSV with a text_a (and text_b) column.")
    p.add_argument("--prediction_path", required=True)
    p.add_argument("--output_logits", action="store_true")
    p.add_argument("--output_prob", action="store_true")
    add_common_args(p, _classifier_args)
    add_model_override_args(p)
    return p


@cli_entry
def finetune_main(argv: Optional[List[str]] = None):
    given = flags_on_command_line(finetune_parser, argv)
    return run_finetune(TASKS.get("classification"), finetune_parser().parse_args(argv), given)


@cli_entry
def infer_main(argv: Optional[List[str]] = None):
    return run_inference(TASKS.get("classification"), infer_parser().parse_args(argv))
