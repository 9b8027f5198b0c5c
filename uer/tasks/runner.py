"""The one fine-tuning procedure and the one inference procedure, for every task.

They receive built objects — the task (tokenizer inside), the model config, the settings and an
``EngineFactory`` — and never parse flags: ``uer.cli.tasks`` does that.  Every engine (local, DDP,
DeepSpeed ZeRO-1/2/3) and gradient accumulation work the same way for every task, because the
task only supplies data, a model, a collator, a metric and a prediction format (``uer.tasks.base``).
"""

import json
import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from uer.config import ModelConfig, save_config
from uer.data.sampler import BatchSampler, CollatedBatches
from uer.errors import ConfigError
from uer.models.pretrained import backbone_config, backbone_source
from uer.partitioned import full_shapes, has_partitioned_parameters
from uer.models.weights import load_weights, read_weights, save_state
from uer.tasks.base import Task, TaskData
from uer.training.engine_factory import EngineFactory
from uer.training.metrics import MetricsLog
from uer.training.trainer import Trainer, TrainerConfig
from uer.utils import atomic_write_text

logger = logging.getLogger("uer")

TASK_INFO_SUFFIX = ".task.json"


def read_task_info(weights_path: str) -> dict:
    """What fine-tuning recorded beside the model (task, head, sequence length ...)."""
    path = weights_path + TASK_INFO_SUFFIX
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); it is written by fine-tuning beside the model — "
                          "restore it or delete it and pass the task's flags explicitly") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return info


@dataclass
class FinetuneSettings:
    """``lora``: a ``uer.models.lora.LoraConfig`` — adapters on the backbone, only they and the head
    train; the best model is saved merged (a plain task model every script loads) and its adapter
    alone beside it (<out>.lora.bin).  ``freeze_prefixes``: parameter-name prefixes kept frozen."""
    output_model_path: str
    pretrained_model_path: Optional[str] = None
    epochs_num: int = 3
    batch_size: int = 32
    report_steps: int = 100
    seed: int = 7
    lora: Optional[object] = None
    freeze_prefixes: Tuple[str, ...] = ()
    adversarial: Optional[object] = None      # uer.training.adversarial.AdversarialConfig (--use_adv)
    # An adapter file (LoRA pretraining's <out>.lora.bin, same settings) loaded over the backbone's
    # new adapters before fine-tuning starts (TencentPretrain's --lora_pretrained_model_path).
    lora_init: Optional[str] = None


# ------------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------------

@torch.inference_mode()
def predict(engine, examples: List[dict], collator, batch_size: int,
            lengths: Optional[Sequence[int]] = None) -> np.ndarray:
    """The model's outputs for every example, in order.  With several processes each rank predicts
    an equal share of batches (the last share padded by repetition, since under ZeRO-3 every rank
    must take part in every forward) and the shares are gathered: every rank returns all outputs.

    ``lengths`` (each example's token count, ``Task.prediction_lengths``): the examples are batched
    longest first, so that a batch pads to about its own rows' length instead of the longest of a
    random draw (on short texts at seq 128, half the positions or more are padding); outputs come
    back in the examples' order.  Only for tasks whose outputs per example do not depend on the
    other rows of the batch (padding is masked)."""
    model = engine.model
    was_training = model.training
    model.eval()
    world, rank = engine.world_size, engine.rank
    order = np.argsort(-np.asarray(lengths), kind="stable") if lengths is not None else np.arange(len(examples))
    batches = [(start, min(start + batch_size, len(examples))) for start in range(0, len(examples), batch_size)]
    per_rank = -(-len(batches) // world)
    mine = [batches[i % len(batches)] for i in range(rank * per_rank, (rank + 1) * per_rank)]
    chunks = []
    for start, end in mine:
        chosen = order[start:end].tolist()
        batch = collator([examples[i] for i in chosen], chosen, 0)
        batch.pop("labels", None)
        batch.pop("tokens", None)
        out = engine.forward(engine.to_device(batch))
        chunks.append(out["logits"].float().cpu().numpy())
    model.train(was_training)
    if world > 1:
        shares = engine.gather(chunks)
        chunks = [c for share in shares for c in share][:len(batches)]
    outputs = concatenate_padded(chunks)
    if lengths is None:
        return outputs
    restored = np.empty_like(outputs)
    restored[order] = outputs
    return restored


def concatenate_padded(chunks: List[np.ndarray]) -> np.ndarray:
    """Batches of per-token outputs (B, L, ...) are padded to different lengths L: pad with zeros."""
    if chunks[0].ndim < 3:
        return np.concatenate(chunks)
    longest = max(c.shape[1] for c in chunks)
    pad = [((0, 0), (0, longest - c.shape[1])) + ((0, 0),) * (c.ndim - 2) for c in chunks]
    return np.concatenate([np.pad(c, p) for c, p in zip(chunks, pad)])


def evaluate(task: Task, engine, data: TaskData, collator, batch_size: int):
    outputs = predict(engine, data.examples, collator, batch_size, task.prediction_lengths(data))
    return task.evaluate(data, outputs), outputs


# ------------------------------------------------------------------------------------------------
# Fine-tuning
# ------------------------------------------------------------------------------------------------

def load_pretrained(model, checkpoint_config: ModelConfig, path: str) -> None:
    """Embedding + encoder (and a head that declares a pretrained prefix) from a pretraining or
    converted checkpoint built from ``checkpoint_config`` (a composite's: its discriminator); the
    pretraining targets it does not use are listed as ignored."""
    source = backbone_source(checkpoint_config, path)
    head_prefix = getattr(model.head, "pretrained_prefix", None)
    allow_missing = ("head.",)
    # Memory-mapped: every rank maps the same file (shared page cache); tensors are read when copied.
    state = read_weights(source, mmap=True) if isinstance(source, str) else dict(source)
    if head_prefix:
        state.update({"head." + k[len(head_prefix):]: v for k, v in state.items() if k.startswith(head_prefix)})
        allow_missing = ()
    # A converted BertModel brings its pooler as head.linear_1, another task's model its own head:
    # what fits this task's head (same name and shape) starts it, the rest is not used.
    own = full_shapes(model)
    unfit = [k for k in state if k.startswith("head.") and tuple(state[k].shape) != own.get(k)]
    for k in unfit:
        del state[k]
    if unfit:
        logger.info("head tensors of %s that do not fit the '%s' head, not used: %s", path,
                    type(model.head).__name__, ", ".join(unfit[:6]) + (" ..." if len(unfit) > 6 else ""))
    ignored = load_weights(model, state, allow_missing=allow_missing, ignore_unexpected=("target.",), source=path)
    logger.info("loaded the backbone from %s (pretraining heads not used: %d tensors)", path, len(ignored) + len(unfit))


def run_finetune(task: Task, config: ModelConfig, train_path: str, dev_path: str, test_path: Optional[str],
                 settings: FinetuneSettings, engines: EngineFactory) -> Dict[str, Dict[str, float]]:
    """Read the splits, then ``finetune_on`` them."""
    train = task.read(train_path, "train")
    dev = task.read(dev_path, "dev")
    test = task.read(test_path, "test") if test_path else None
    return finetune_on(task, config, train, dev, test, settings, engines)


def finetune_on(task: Task, config: ModelConfig, train: TaskData, dev: TaskData, test: Optional[TaskData],
                settings: FinetuneSettings, engines: EngineFactory) -> Dict[str, Dict[str, float]]:
    """Train for ``epochs_num`` epochs, evaluate on dev after each, keep the best model by the task's
    primary metric (weights, config and task info beside it), then score test with that model.
    Returns {"dev": scores + epoch, "test": scores}."""
    checkpoint_config, config = config, backbone_config(config)
    task.prepare(train, config)
    for data in (dev, test):
        if data is not None:
            task.check_data(data, config)
    logger.info("%d train / %d dev%s examples", len(train), len(dev), f" / {len(test)} test" if test else "")
    with engines.construction():
        model = task.build_model(config)
    if settings.pretrained_model_path:
        load_pretrained(model, checkpoint_config, settings.pretrained_model_path)
    else:
        logger.warning("no --pretrained_model_path: fine-tuning from random initialisation")
    adapters = attach_adapters(model, settings)
    accumulation = engines.settings.accumulation_steps
    sampler = BatchSampler(len(train), settings.batch_size, settings.seed, rank=engines.rank,
                           world_size=engines.world_size, drop_last=False)
    if sampler.batches_per_epoch % accumulation:
        raise ConfigError(f"--accumulation_steps {accumulation} does not divide the {sampler.batches_per_epoch} "
                          "batches of an epoch; pick a divisor so that epochs end on an optimizer step")
    steps_per_epoch = sampler.batches_per_epoch // accumulation
    total_steps = steps_per_epoch * settings.epochs_num
    engine = engines.build(model, total_steps)
    collator = task.collator()
    out_path = settings.output_model_path
    trainer = Trainer(engine, CollatedBatches(train.examples, collator), sampler,
                      TrainerConfig(total_steps=total_steps, accumulation_steps=accumulation,
                                    report_steps=settings.report_steps, save_checkpoint_steps=total_steps + 1,
                                    adversarial=settings.adversarial),
                      metrics=MetricsLog(out_path + ".metrics.jsonl") if engine.is_main else None)
    logger.info("engine %s, %d process(es), %s; %d optimizer steps", engines.engine, engines.world_size,
                engines.settings.precision, total_steps)

    primary, best, results = task.primary_metric, None, {}
    for epoch in range(1, settings.epochs_num + 1):
        trainer.train(until=epoch * steps_per_epoch)
        scores, outputs = evaluate(task, engine, dev, collator, settings.batch_size)
        if primary not in scores:
            raise ConfigError(f"task '{task.name}' declares primary metric '{primary}' but its evaluation "
                              f"returned {sorted(scores)}")
        logger.info("epoch %d/%d: dev %s", epoch, settings.epochs_num, task.summary(scores))
        if best is None or scores[primary] > best:
            best, results["dev"] = scores[primary], dict(scores, epoch=epoch)
            for line in task.log_details(dev, outputs):
                logger.info("%s", line)
            state = engine.full_state_dict()      # collective: ZeRO-3 gathers the partitions
            if engine.is_main:
                if adapters:
                    save_state({k: state[k] for k in adapters}, out_path + ".lora.bin")
                    state = merged_state(engine.model, state)
                save_task_model(task, config, state, out_path, epoch)
            engine.barrier()
    logger.info("best dev %s %.4f (epoch %d) -> %s", primary, best, results["dev"]["epoch"], out_path)
    partitioned = has_partitioned_parameters(engine.model)
    if adapters and not partitioned:      # the test pass below loads the merged weights into plain modules
        from uer.models.lora import merge_lora
        merge_lora(engine.model)
    if engine.is_main:
        print(f"dev {task.summary(results['dev'])}")
    if test is not None:
        if adapters and partitioned:      # ZeRO-3: the frozen base is as it was; the best adapter goes back on
            from uer.models.lora import load_lora_weights
            load_lora_weights(engine.model, out_path + ".lora.bin")
        else:
            load_weights(engine.model, out_path)
        results["test"], outputs = evaluate(task, engine, test, collator, settings.batch_size)
        if engine.is_main:
            print(f"test {task.summary(results['test'])}")
            for line in task.log_details(test, outputs):
                logger.info("test %s", line)
    return results


def attach_adapters(model, settings: FinetuneSettings) -> List[str]:
    """LoRA / freezing as the settings ask; returns the adapter file's keys ([] without LoRA)."""
    from uer.models.lora import apply_lora, freeze_by_prefix, load_lora_weights, lora_state_keys
    if settings.lora is not None:
        # The head trains beside the adapters; a task model without one (text2text: the encoder-decoder
        # itself) names what trains instead (``trainable_with_lora``, () = the adapters alone).
        wrapped = apply_lora(model, settings.lora, trainable_prefixes=getattr(model, "trainable_with_lora", ("head.",)))
        logger.info("LoRA r=%d alpha=%g on %d layers; %d trainable tensors", settings.lora.r, settings.lora.alpha,
                    len(wrapped), sum(p.requires_grad for p in model.parameters()))
        if settings.lora_init:
            # The head is new; everything else the file holds must be exactly this model's adapters.
            load_lora_weights(model, settings.lora_init, allow_missing=("head.",))
            logger.info("adapters initialised from %s", settings.lora_init)
    if settings.freeze_prefixes:
        freeze_by_prefix(model, settings.freeze_prefixes)
    return lora_state_keys(model) if settings.lora is not None else []


def merged_state(model, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state`` with every adapter folded into its base weight (W + alpha/r B A) and the adapter
    matrices dropped: the plain task model inference and conversion load."""
    from uer.models.lora import lora_modules
    merged = dict(state)
    for name, module in lora_modules(model).items():
        # From the gathered state, not the module: under ZeRO-3 the module holds only partitions.
        a, b = merged[name + ".lora_A"].float(), merged[name + ".lora_B"].float()
        delta = (b @ a) * (module.alpha / module.r)
        merged[name + ".weight"] = merged[name + ".weight"] + delta.to(merged[name + ".weight"].dtype)
        merged.pop(name + ".lora_A", None)
        merged.pop(name + ".lora_B", None)
    return merged


def save_task_model(task: Task, config: ModelConfig, state, path: str, epoch: int) -> None:
    """Weights, the model config and <path>.task.json (what inference and conversion rebuild from)."""
    save_state(state, path)
    save_config(config, path + ".config.json")
    info = {"task": task.name, "head": task.head, "head_options": task.head_options(),
            "seq_length": task.seq_length, "labels_num": config.labels_num, "pooling": config.pooling,
            "epoch": epoch, **task.info()}
    atomic_write_text(path + TASK_INFO_SUFFIX, json.dumps(info, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------------
# Inference
# ------------------------------------------------------------------------------------------------

def run_inference(task: Task, config: ModelConfig, load_model_path: str, test_path: str, prediction_path: str,
                  batch_size: int, engines: EngineFactory):
    """Predict every example of ``test_path`` with a fine-tuned model and write the task's
    prediction file (by rank 0; under DDP / DeepSpeed every rank predicts a share).  Returns what
    the task wrote (rank 0) or None."""
    task.check_model(config)
    data = task.read(test_path, "infer")
    with engines.construction():
        model = task.build_model(config)
    load_weights(model, load_model_path)
    engine = engines.build_for_inference(model)
    # Marks the end of startup (reading, tokenizing, building, loading): benchmarks time from here.
    logger.info("predicting %d examples, batch size %d", len(data), batch_size)
    outputs = predict(engine, data.examples, task.collator(), batch_size, task.prediction_lengths(data))
    written = None
    if engine.is_main:
        written = task.write_predictions(data, outputs, prediction_path)
        logger.info("%d predictions written to %s", len(data), prediction_path)
    engine.barrier()
    return written


__all__ = ["run_finetune", "finetune_on", "run_inference", "predict", "evaluate", "FinetuneSettings",
           "read_task_info", "TASK_INFO_SUFFIX"]
