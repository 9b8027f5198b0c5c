"""The fine-tuning and inference procedures shared by every task; the task class supplies the
reader, model, collator, metric and prediction format."""

import argparse
import dataclasses
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import torch

from uer.cli.model_args import resolve_model_config, set_vocab_size
from uer.config import save_config
from uer.data.sampler import BatchSampler, CollatedBatches
from uer.cli.common import tokenizer_from_args
from uer.errors import ConfigError, DataError
from uer.cli.engine_setup import build_engine, model_construction, setup_engine
from uer.models.pretrained import backbone_source
from uer.models.weights import load_weights, save_state
from uer.training.device import pick_device
from uer.training.engines import LocalEngine
from uer.training.metrics import MetricsLog
from uer.training.trainer import Trainer, TrainerConfig
from uer.utils import atomic_write_text, set_seed

logger = logging.getLogger("uer")


TASK_INFO_SUFFIX = ".task.json"


def read_task_info(weights_path: str) -> dict:
    """What fine-tuning recorded beside the model (sequence length ...), so inference matches it."""
    path = weights_path + TASK_INFO_SUFFIX
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@torch.inference_mode()
def predict_logits(engine, examples: List[dict], collator, batch_size: int) -> np.ndarray:
    """Logits for every example, in order.  With several processes each rank predicts an equal
    share of batches (the last share padded by repetition, since under ZeRO-3 every rank must take
    part in every forward) and the shares are gathered: every rank returns all logits."""
    model = engine.model
    was_training = model.training
    model.eval()
    world, rank = engine.world_size, engine.rank
    batches = [(start, min(start + batch_size, len(examples))) for start in range(0, len(examples), batch_size)]
    per_rank = -(-len(batches) // world)
    mine = [batches[i % len(batches)] for i in range(rank * per_rank, (rank + 1) * per_rank)]
    chunks = []
    for start, end in mine:
        batch = collator(examples[start:end])
        batch.pop("labels", None)
        batch.pop("tokens", None)
        out = engine.forward(engine.to_device(batch))
        chunks.append(out["logits"].float().cpu().numpy())
    model.train(was_training)
    if world > 1:
        shares = engine.gather(chunks)
        chunks = [c for share in shares for c in share][:len(batches)]
    # Per-token logits (B, L, labels): batches are padded to different lengths L.
    longest = max(c.shape[1] for c in chunks) if chunks[0].ndim == 3 else 0
    return np.concatenate([np.pad(c, ((0, 0), (0, longest - c.shape[1]), (0, 0))) if longest else c
                           for c in chunks])


def evaluate(task, engine, examples: List[dict], collator, batch_size: int) -> Dict[str, float]:
    logits = predict_logits(engine, examples, collator, batch_size)
    return task.metrics([e["label"] for e in examples], logits.argmax(-1).tolist())


def _load_pretrained(model, config, composite: str, path: str) -> None:
    source = backbone_source(dataclasses.replace(config, pretrainer=composite), path)
    ignored = load_weights(model, source, allow_missing=("head.",), ignore_unexpected=("target.",), source=path)
    logger.info("loaded embedding + encoder from %s (pretraining heads not used: %d tensors)", path, len(ignored))


def run_finetune(task_cls, args: argparse.Namespace, given: Optional[set] = None) -> Dict[str, Dict[str, float]]:
    """``given``: the flags on the command line (a DeepSpeed config may fill the others)."""
    if args.fp16:
        args.precision = "fp16"
    device, world_size, ds_config, own_optimizer = setup_engine(args, given or set())
    set_seed(args.seed)
    tokenizer = tokenizer_from_args(args)
    config = resolve_model_config(args, weights_path=args.pretrained_model_path)
    set_vocab_size(config, len(tokenizer.vocab), args.vocab_path or args.spm_model_path)
    args.seq_length = args.seq_length or min(128, config.max_seq_length)
    if args.seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length "
                          f"{config.max_seq_length}")
    task = task_cls.from_args(tokenizer, args, {})
    requested = getattr(args, "labels_num", None)         # NER takes its labels from --label2id_path
    train = task.read(args.train_path, "--train_path", with_labels=True, labels_num=requested or 0)
    labels_num = task.labels_num(train, requested)
    config.labels_num, config.pooling = labels_num, getattr(args, "pooling", None) or config.pooling
    dev = task.read(args.dev_path, "--dev_path", with_labels=True, labels_num=labels_num)
    test = task.read(args.test_path, "--test_path", with_labels=True, labels_num=labels_num) \
        if args.test_path else None
    logger.info("%d train / %d dev%s examples, %d labels", len(train), len(dev),
                f" / {len(test)} test" if test else "", labels_num)

    composite, config.pretrainer = config.pretrainer, ""
    with model_construction(args, ds_config):
        model = task.build_model(config)
    if args.pretrained_model_path:
        _load_pretrained(model, config, composite, args.pretrained_model_path)
    else:
        logger.warning("no --pretrained_model_path: fine-tuning from random initialisation")
    sampler = BatchSampler(len(train), args.batch_size, args.seed, rank=0, world_size=world_size, drop_last=False)
    if world_size > 1:
        import torch.distributed as dist
        sampler.rank = dist.get_rank()
    if sampler.batches_per_epoch % args.accumulation_steps:
        raise ConfigError(f"--accumulation_steps {args.accumulation_steps} does not divide the "
                          f"{sampler.batches_per_epoch} batches of an epoch; pick a divisor so that epochs "
                          "end on an optimizer step")
    steps_per_epoch = sampler.batches_per_epoch // args.accumulation_steps
    args.total_steps = steps_per_epoch * args.epochs_num
    engine = build_engine(args, model, device, ds_config, own_optimizer)
    collator = task.collator()
    trainer = Trainer(engine, CollatedBatches(train, collator), sampler,
                      TrainerConfig(total_steps=args.total_steps, accumulation_steps=args.accumulation_steps,
                                    report_steps=args.report_steps, save_checkpoint_steps=args.total_steps + 1),
                      metrics=MetricsLog(args.output_model_path + ".metrics.jsonl") if engine.is_main else None)
    logger.info("engine %s, %d process(es), %s; %d optimizer steps", args.engine, world_size, args.precision,
                args.total_steps)

    best, results, primary = -1.0, {}, task.primary_metric
    for epoch in range(1, args.epochs_num + 1):
        trainer.train(until=epoch * steps_per_epoch)
        scores = evaluate(task, engine, dev, collator, args.batch_size)
        logger.info("epoch %d/%d: dev %s", epoch, args.epochs_num, task.summary(scores))
        if scores[primary] > best:
            best, results["dev"] = scores[primary], dict(scores, epoch=epoch)
            state = engine.full_state_dict()      # collective: ZeRO-3 gathers the partitions
            if engine.is_main:
                save_state(state, args.output_model_path)
                save_config(config, args.output_model_path + ".config.json")
                atomic_write_text(args.output_model_path + TASK_INFO_SUFFIX,
                                  json.dumps({"seq_length": args.seq_length, "labels_num": labels_num,
                                              "pooling": config.pooling, "epoch": epoch, **task.info()}) + "\n")
            engine.barrier()
    logger.info("best dev %s %.4f (epoch %d) -> %s", primary, best, results["dev"]["epoch"], args.output_model_path)
    if engine.is_main:
        print(f"dev {task.summary(results['dev'])}")
    if test is not None:
        load_weights(engine.model, args.output_model_path)
        results["test"] = evaluate(task, engine, test, collator, args.batch_size)
        if engine.is_main:
            print(f"test {task.summary(results['test'])}")
    return results


def run_inference(task_cls, args: argparse.Namespace) -> List[str]:
    if args.fp16:
        args.precision = "fp16"
    device = pick_device(args.device)
    tokenizer = tokenizer_from_args(args)
    requested_labels, args.labels_num = getattr(args, "labels_num", None), None   # checked, not applied
    config = resolve_model_config(args, weights_path=args.load_model_path)
    set_vocab_size(config, len(tokenizer.vocab), args.vocab_path or args.spm_model_path)
    if requested_labels and requested_labels != config.labels_num:
        raise ConfigError(f"--labels_num {requested_labels} but the model {args.load_model_path} was "
                          f"fine-tuned with {config.labels_num} labels")
    task_info = read_task_info(args.load_model_path)
    args.seq_length = args.seq_length or task_info.get("seq_length") or min(128, config.max_seq_length)
    if args.seq_length > config.max_seq_length:
        raise ConfigError(f"--seq_length {args.seq_length} exceeds the model's max_seq_length "
                          f"{config.max_seq_length}")
    task = task_cls.from_args(tokenizer, args, task_info)
    examples = task.read(args.test_path, "--test_path", with_labels=False)
    model = task.build_model(config)
    load_weights(model, args.load_model_path)
    engine = LocalEngine(model, torch.optim.SGD(model.parameters(), lr=0.0), None, device, args.precision)
    logits = predict_logits(engine, examples, task.collator(), args.batch_size)
    lines = task.format_predictions(logits, getattr(args, "output_logits", False), getattr(args, "output_prob", False),
                                    examples=examples)
    atomic_write_text(args.prediction_path, "\n".join(lines) + "\n")
    logger.info("%d predictions written to %s", len(examples), args.prediction_path)
    return lines


__all__ = ["run_finetune", "run_inference", "predict_logits", "evaluate", "DataError"]
