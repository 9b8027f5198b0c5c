"""The fine-tuning and inference command lines of every task: UER-py's shared flags, the task's
own (``Task.add_args``), then the one runner.  ``finetune/run_<x>.py`` and
``inference/run_<x>_infer.py`` are two-line shims over ``finetune_main`` / ``infer_main``.

Fine-tuning runs on one process, under torchrun with --engine ddp, or on DeepSpeed (ZeRO-2/3 for
models that do not fit one device); inference takes the same engine flags:
    deepspeed finetune/run_classifier.py --deepspeed --deepspeed_config models/deepspeed/zero3.json ...
"""

import argparse
import functools
from typing import List, Optional

from uer.cli.adv_args import add_adv_args, adversarial_from_args, check_adv_flags
from uer.cli.common import add_log_args, add_tokenizer_args, cli_entry, configure_logging, tokenizer_from_args
from uer.cli.engine_setup import add_engine_args, engine_factory, flags_on_command_line
from uer.cli.lora_args import add_lora_args, freeze_prefixes_from_args, lora_config_from_args
from uer.cli.optim_args import add_optimizer_args, check_optimizer_flags, scheduler_help
from uer.cli.model_args import add_model_override_args, resolve_model_config, set_vocab_size
from uer.cli.output_paths import Output, model_output, refuse_outputs_over_inputs
from uer.config import find_config_beside
from uer.errors import ConfigError
from uer.registry import TASKS
from uer.tasks.runner import TASK_INFO_SUFFIX, FinetuneSettings, read_task_info, run_finetune, run_inference
from uer.training.run_lock import lock_output
from uer.utils import set_seed
import uer.tasks  # noqa: F401  (registers the tasks)


def add_common_args(p: argparse.ArgumentParser, task_cls, training: bool) -> None:
    p.add_argument("--config_path", default=None,
                   help="Model config; default: the config saved beside the model weights.")
    add_tokenizer_args(p)
    p.add_argument("--seq_length", type=int, default=None,
                   help=f"Tokens per example after truncation; default min({task_cls.default_seq_length}, the "
                        "model's max_seq_length), for inference what the model was fine-tuned with.")
    p.add_argument("--batch_size", type=int, default=32)
    task_cls.add_args(p, training)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--fp16", action="store_true", help="UER-py flag: same as --precision fp16.")
    p.add_argument("--device", default="auto")
    add_log_args(p)


def add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs_num", type=int, default=3)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--scheduler", default="linear", help=scheduler_help())
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
    add_optimizer_args(p, {a.dest for a in p._actions})


def finetune_parser(task_name: str) -> argparse.ArgumentParser:
    task_cls = TASKS.get(task_name)
    p = argparse.ArgumentParser(description=f"Fine-tune a model for the '{task_name}' task.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--output_model_path", default="models/finetuned_model.bin")
    p.add_argument("--train_path", required=True)
    p.add_argument("--dev_path", required=True)
    p.add_argument("--test_path", default=None, help="Scored like the dev file with the best dev model.")
    add_common_args(p, task_cls, training=True)
    add_training_args(p)
    add_engine_args(p)
    add_lora_args(p)
    add_adv_args(p)
    add_model_override_args(p)
    return p


def infer_parser(task_name: str) -> argparse.ArgumentParser:
    task_cls = TASKS.get(task_name)
    p = argparse.ArgumentParser(description=f"Predict with a model fine-tuned for the '{task_name}' task.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--load_model_path", required=True)
    p.add_argument("--test_path", required=True)
    p.add_argument("--prediction_path", required=True)
    add_common_args(p, task_cls, training=False)
    add_engine_args(p)
    add_model_override_args(p)
    # A DeepSpeed engine is built from the training settings; inference never steps it.
    p.set_defaults(accumulation_steps=1, max_grad_norm=1.0, learning_rate=0.0, weight_decay=0.0, beta1=0.9,
                   beta2=0.999, adam_epsilon=1e-6, warmup=0.0, scheduler="constant", poly_power=1.0,
                   lr_end_ratio=0.0)
    return p


def _model_config(args, weights_path: Optional[str], tokenizer, task_cls, saved: dict):
    config = resolve_model_config(args, weights_path=weights_path)
    set_vocab_size(config, len(tokenizer.vocab), args.vocab_path or args.spm_model_path)
    args.seq_length = args.seq_length or saved.get("seq_length") or min(task_cls.default_seq_length,
                                                                         config.max_seq_length)
    if args.seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length "
                          f"{config.max_seq_length}")
    return config


def finetune(task_name: str, argv: Optional[List[str]] = None):
    given = flags_on_command_line(lambda: finetune_parser(task_name), argv)
    args = finetune_parser(task_name).parse_args(argv)
    check_adv_flags(args, given)
    refuse_outputs_over_inputs(args, [model_output(), Output("log_path")], {
        "the config beside --pretrained_model_path": find_config_beside(args.pretrained_model_path)})
    configure_logging(args)
    check_optimizer_flags(args, given)
    if args.fp16:
        args.precision = "fp16"
    engines = engine_factory(args, given)       # may take batch size / precision from a DeepSpeed config
    lock = lock_output(args.output_model_path)
    try:
        return _finetune(task_name, args, engines)
    finally:
        if lock is not None:
            lock.release()


def _finetune(task_name: str, args, engines):
    set_seed(args.seed)
    task_cls = TASKS.get(task_name)
    tokenizer = tokenizer_from_args(args)
    config = _model_config(args, args.pretrained_model_path, tokenizer, task_cls, {})
    task = task_cls.from_args(tokenizer, args, {})
    return run_finetune(task, config, args.train_path, args.dev_path, args.test_path, finetune_settings(args),
                        engines)


def finetune_settings(args) -> FinetuneSettings:
    """What the shared fine-tuning flags ask of the one fine-tuning procedure."""
    return FinetuneSettings(args.output_model_path, args.pretrained_model_path, args.epochs_num,
                            args.batch_size, args.report_steps, args.seed, lora_config_from_args(args),
                            tuple(freeze_prefixes_from_args(args)), adversarial_from_args(args),
                            lora_init=getattr(args, "lora_pretrained_model_path", None))


def infer(task_name: str, argv: Optional[List[str]] = None):
    given = flags_on_command_line(lambda: infer_parser(task_name), argv)
    args = infer_parser(task_name).parse_args(argv)
    refuse_outputs_over_inputs(args, [Output("prediction_path"), Output("log_path")], {
        "the config beside --load_model_path": find_config_beside(args.load_model_path),
        "the task info beside --load_model_path": args.load_model_path + TASK_INFO_SUFFIX})
    configure_logging(args)
    if args.fp16:
        args.precision = "fp16"
    engines = engine_factory(args, given)
    task_cls = TASKS.get(task_name)
    saved = read_task_info(args.load_model_path)
    if saved.get("task", task_name) != task_name:
        raise ConfigError(f"{args.load_model_path} was fine-tuned for the '{saved['task']}' task, not "
                          f"'{task_name}'; use that task's inference script")
    tokenizer = tokenizer_from_args(args)
    labels_flag = getattr(args, "labels_num", None)
    if labels_flag is not None:          # checked against the model by the task, never applied to it
        args.labels_num = None
    config = _model_config(args, args.load_model_path, tokenizer, task_cls, saved)
    if labels_flag is not None:
        args.labels_num = labels_flag
    task = task_cls.from_args(tokenizer, args, saved)
    return run_inference(task, config, args.load_model_path, args.test_path, args.prediction_path,
                         args.batch_size, engines)


def finetune_main(task_name: str):
    """A console-script / shim entry: ``finetune_main("classification")()``."""
    return cli_entry(functools.partial(finetune, task_name))


def infer_main(task_name: str):
    return cli_entry(functools.partial(infer, task_name))
