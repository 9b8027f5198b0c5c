"""UER-py's classification variants, each a loop of ordinary fine-tuning runs through the one
procedure (``uer.tasks.runner.finetune_on``), with UER-py's file names and flags:

* ``finetune/run_classifier_mt.py`` — multi-task: ``--dataset_path_list`` directories (train.tsv,
  dev.tsv, optional test.tsv), one shared backbone, one head per dataset (task
  ``classification_mt``); ``inference/run_classifier_mt_infer.py`` predicts with every head or the
  one ``--dataset_id`` names.
* ``finetune/run_classifier_cv.py`` — k-fold cross-validation over ``--train_path``
  (``--folds_num``); a model per fold (``<name>-fold_<i>.<suffix>``, as UER-py), out-of-fold class
  probabilities in row order saved with ``np.save`` to ``--train_features_path`` (for stacking).
* ``finetune/run_classifier_grid.py`` — every combination of ``--batch_size_list`` x
  ``--learning_rate_list`` x ``--epochs_num_list``; a table, the best combination by dev accuracy,
  whose model is kept at ``--output_model_path``.
"""

import argparse
import copy
import dataclasses
import itertools
import logging
import os
import shutil
from typing import Callable, List, Optional

import numpy as np
import torch

from uer.cli.adv_args import add_adv_args, check_adv_flags
from uer.cli.common import cli_entry, configure_logging, tokenizer_from_args
from uer.cli.optim_args import check_optimizer_flags
from uer.cli.engine_setup import add_engine_args, engine_factory, flags_on_command_line
from uer.cli.lora_args import add_lora_args
from uer.cli.model_args import add_model_override_args
from uer.cli.output_paths import MODEL_COMPANIONS, Output, model_output, refuse_outputs_over_inputs
from uer.cli.tasks import (_model_config, add_common_args, add_training_args, finetune_parser, finetune_settings,
                           infer_main)
from uer.config import find_config_beside, load_config
from uer.errors import ConfigError, DataError
from uer.models.weights import load_weights
from uer.registry import TASKS
from uer.tasks.base import TaskData
from uer.tasks.multi_task import dataset_files
from uer.tasks.runner import FinetuneSettings, finetune_on, predict
from uer.training.engine_factory import EngineFactory
from uer.training.run_lock import lock_output
from uer.utils import set_seed

logger = logging.getLogger("uer")


# ------------------------------------------------------------------------------------------------
# What the three scripts share
# ------------------------------------------------------------------------------------------------

def _run(make_parser: Callable[[], argparse.ArgumentParser], argv: Optional[List[str]],
         outputs: Callable[[argparse.Namespace], tuple], body):
    """Parse, refuse outputs over inputs, set up the engine, hold the lock on --output_model_path,
    then ``body(args, engines)`` — what ``uer.cli.tasks.finetune`` does for one run.  ``outputs``:
    (namespace to check, outputs, extra inputs) for the output check."""
    given = flags_on_command_line(make_parser, argv)
    args = make_parser().parse_args(argv)
    check_adv_flags(args, given)
    checked, written, extra = outputs(args)
    extra = dict(extra, **{"the config beside --pretrained_model_path": find_config_beside(args.pretrained_model_path)})
    refuse_outputs_over_inputs(checked, list(written) + [Output("log_path")], extra)
    configure_logging(args)
    check_optimizer_flags(args, given)
    if args.fp16:
        args.precision = "fp16"
    engines = engine_factory(args, given)
    lock = lock_output(args.output_model_path)
    try:
        set_seed(args.seed)
        return body(args, engines)
    finally:
        if lock is not None:
            lock.release()


def _settings(args, **changes) -> FinetuneSettings:
    return dataclasses.replace(finetune_settings(args), **changes)


def _task_and_config(task_name: str, args):
    task_cls = TASKS.get(task_name)
    tokenizer = tokenizer_from_args(args)
    config = _model_config(args, args.pretrained_model_path, tokenizer, task_cls, {})
    return task_cls.from_args(tokenizer, args, {}), config


def predict_saved(task, model_path: str, data: TaskData, engines: EngineFactory, batch_size: int) -> np.ndarray:
    """The outputs of the task model fine-tuning saved at ``model_path`` (config beside it) on ``data``."""
    config = load_config(model_path + ".config.json")
    with engines.construction():
        model = task.build_model(config)
    load_weights(model, model_path)
    return predict(engines.build_for_inference(model), data.examples, task.collator(), batch_size)


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _training_flags(p: argparse.ArgumentParser) -> None:
    add_training_args(p)
    add_engine_args(p)
    add_lora_args(p)
    add_adv_args(p)
    add_model_override_args(p)


# ------------------------------------------------------------------------------------------------
# run_classifier_mt.py
# ------------------------------------------------------------------------------------------------

def mt_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Multi-task classification (UER-py run_classifier_mt.py): a shared "
                                            "backbone and one classifier head per dataset.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--dataset_path_list", nargs="+", required=True,
                   help="Directories each holding train.tsv and dev.tsv (test.tsv optional); head i serves "
                        "directory i.")
    p.add_argument("--output_model_path", default="models/multitask_classifier_model.bin")
    add_common_args(p, TASKS.get("classification_mt"), training=True)
    _training_flags(p)
    return p


def finetune_mt(argv: Optional[List[str]] = None):
    def outputs(args):
        return args, [model_output()], {"--dataset_path_list": [
            os.path.join(d, f"{s}.tsv") for d in args.dataset_path_list for s in ("train", "dev", "test")]}
    return _run(mt_parser, argv, outputs, _finetune_mt)


def _finetune_mt(args, engines):
    dirs = args.dataset_path_list
    dataset_files(dirs, "train")           # every directory checked before anything is read
    dataset_files(dirs, "dev")
    task, config = _task_and_config("classification_mt", args)
    train, dev = task.read_datasets(dirs, "train"), task.read_datasets(dirs, "dev")
    tests = dataset_files(dirs, "test", required=False)
    test = None
    if all(tests):
        test = task.read_datasets(dirs, "test")
    elif any(tests):
        logger.warning("test.tsv is missing from %s: no test scores",
                       ", ".join(d for d, t in zip(dirs, tests) if t is None))
    for i, (path, start, end) in enumerate(train.extra["datasets"]):
        logger.info("dataset %d: %s, %d train examples (%.1f%% of the batches)", i, path, end - start,
                    100.0 * (end - start) / len(train))
    results = finetune_on(task, config, train, dev, test, _settings(args), engines)
    if engines.rank == 0:
        rows = []
        for i, d in enumerate(dirs):
            row = [str(i), d, str(task.labels_num_list[i]), f"{results['dev'][f'accuracy_{i}']:.4f}"]
            if test is not None:
                row.append(f"{results['test'][f'accuracy_{i}']:.4f}")
            rows.append(row)
        header = ["dataset_id", "dataset", "labels", "dev_acc"] + (["test_acc"] if test is not None else [])
        print(_table(header, rows))
        print(f"mean dev accuracy {results['dev']['accuracy']:.4f} (epoch {results['dev']['epoch']}) "
              f"-> {args.output_model_path}")
    return results


# ------------------------------------------------------------------------------------------------
# run_classifier_cv.py
# ------------------------------------------------------------------------------------------------

def cv_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Classification with k-fold cross-validation (UER-py "
                                            "run_classifier_cv.py).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--output_model_path", default="models/classifier_model.bin",
                   help="Fold i's model is written to <name>-fold_<i>.<suffix>.")
    p.add_argument("--train_path", required=True)
    p.add_argument("--train_features_path", default=None,
                   help="Out-of-fold class probabilities, one row per --train_path example in file order, "
                        "written with np.save to exactly this path (features for stacking).")
    p.add_argument("--folds_num", type=int, default=5, help="The number of folds for cross validation.")
    add_common_args(p, TASKS.get("classification"), training=True)
    _training_flags(p)
    return p


def fold_model_path(output_model_path: str, fold: int) -> str:
    """UER-py's naming: models/classifier_model.bin -> models/classifier_model-fold_0.bin."""
    stem, suffix = os.path.splitext(output_model_path)
    return f"{stem}-fold_{fold}{suffix}"


def fold_indices(n: int, folds_num: int) -> List[np.ndarray]:
    """Contiguous folds in file order whose sizes differ by at most one; together every index once."""
    if folds_num < 2:
        raise ConfigError(f"--folds_num {folds_num}: cross-validation needs at least 2 folds")
    if folds_num > n:
        raise DataError(f"--folds_num {folds_num} exceeds the {n} examples of --train_path: every fold needs "
                        "at least one example; lower --folds_num")
    return np.array_split(np.arange(n), folds_num)


def finetune_cv(argv: Optional[List[str]] = None):
    def outputs(args):
        folds = max(args.folds_num, 0)
        checked = argparse.Namespace(**vars(args), **{f"fold_{i}": fold_model_path(args.output_model_path, i)
                                                      for i in range(min(folds, 1000))})
        written = [model_output()] + [model_output(f"fold_{i}") for i in range(min(folds, 1000))]
        if args.train_features_path:
            written.append(Output("train_features_path"))
        return checked, written, {}
    return _run(cv_parser, argv, outputs, _finetune_cv)


def _finetune_cv(args, engines):
    if args.folds_num < 2:             # before reading anything
        raise ConfigError(f"--folds_num {args.folds_num}: cross-validation needs at least 2 folds")
    task, config = _task_and_config("classification", args)
    data = task.read(args.train_path, "train")
    folds = fold_indices(len(data), args.folds_num)
    probe = copy.deepcopy(config)
    task.prepare(data, probe)              # the label set of the whole file, so every fold has the same head
    task.requested_labels = probe.labels_num
    features = np.zeros((len(data), probe.labels_num), dtype=np.float32)
    rows, scores = [], []
    for fold, dev_idx in enumerate(folds):
        held_out = set(dev_idx.tolist())
        train = TaskData([e for i, e in enumerate(data.examples) if i not in held_out], data.path, "train")
        dev = TaskData([data.examples[i] for i in dev_idx], data.path, "dev")
        path = fold_model_path(args.output_model_path, fold)
        logger.info("fold %d/%d: %d train / %d held-out examples -> %s", fold + 1, len(folds), len(train), len(dev), path)
        set_seed(args.seed)
        result = finetune_on(task, copy.deepcopy(config), train, dev, None, _settings(args, output_model_path=path),
                             engines)
        outputs = predict_saved(task, path, dev, engines, args.batch_size)
        features[dev_idx] = torch.softmax(torch.from_numpy(outputs).float(), dim=-1).numpy()
        scores.append(result["dev"])
        rows.append([str(fold), str(len(train)), str(len(dev)), f"{result['dev']['accuracy']:.4f}",
                     f"{result['dev']['macro_f1']:.4f}", str(result["dev"]["epoch"])])
    mean = {k: float(np.mean([s[k] for s in scores])) for k in ("accuracy", "macro_f1")}
    if engines.rank == 0:
        if args.train_features_path:
            _save_npy(args.train_features_path, features)
            logger.info("out-of-fold probabilities (%d x %d) -> %s", *features.shape, args.train_features_path)
        print(_table(["fold", "train", "dev", "dev_acc", "dev_macro_f1", "epoch"], rows))
        print("Acc. : {:.4f}".format(mean["accuracy"]))
        print("Marco F1 : {:.4f}".format(mean["macro_f1"]))      # UER-py's spelling, for scripts that parse it
    return {"folds": scores, "mean": mean, "features": features}


def _save_npy(path: str, array: np.ndarray) -> None:
    """np.save to exactly ``path`` (no .npy appended), atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# run_classifier_grid.py
# ------------------------------------------------------------------------------------------------

def grid_parser() -> argparse.ArgumentParser:
    p = finetune_parser("classification")
    p.description = ("Classification with a hyper-parameter grid search (UER-py run_classifier_grid.py); the "
                     "best combination's model is kept at --output_model_path.")
    p.add_argument("--batch_size_list", default=[32, 64], nargs="+", type=int,
                   help="A list of batch sizes for grid search.")
    p.add_argument("--learning_rate_list", type=float, default=[3e-5, 1e-4, 3e-4], nargs="+",
                   help="A list of learning rate for grid search.")
    p.add_argument("--epochs_num_list", type=int, default=[3, 5, 8], nargs="+",
                   help="A list of number of epochs for grid search.")
    return p


def finetune_grid(argv: Optional[List[str]] = None):
    def outputs(args):
        return args, [Output("output_model_path", companions=MODEL_COMPANIONS + (".grid",))], {}
    return _run(grid_parser, argv, outputs, _finetune_grid)


def _finetune_grid(args, engines):
    for flag in ("batch_size_list", "learning_rate_list", "epochs_num_list"):
        values = getattr(args, flag)
        bad = [v for v in values if v <= 0]
        if bad:
            raise ConfigError(f"--{flag} {' '.join(map(str, values))}: every value must be positive")
    if engines.engine == "deepspeed":
        raise ConfigError("run_classifier_grid.py runs on --engine local or ddp: a DeepSpeed config fixes the "
                          "batch size and optimizer that the grid varies")
    task, config = _task_and_config("classification", args)
    train, dev = task.read(args.train_path, "train"), task.read(args.dev_path, "dev")
    test = task.read(args.test_path, "test") if args.test_path else None
    work = args.output_model_path + ".grid"
    combos = list(itertools.product(args.batch_size_list, args.learning_rate_list, args.epochs_num_list))
    rows, results, paths = [], [], []
    for i, (batch_size, learning_rate, epochs_num) in enumerate(combos):
        logger.info("grid %d/%d: batch_size %d, learning_rate %g, epochs_num %d", i + 1, len(combos), batch_size,
                    learning_rate, epochs_num)
        path = os.path.join(work, f"combination_{i}{os.path.splitext(args.output_model_path)[1] or '.bin'}")
        combo_engines = EngineFactory(engines.engine, engines.device, engines.world_size,
                                      dataclasses.replace(engines.settings, learning_rate=learning_rate),
                                      engines.ds_config, engines.own_optimizer)
        set_seed(args.seed)
        result = finetune_on(task, copy.deepcopy(config), train, dev, None,
                             _settings(args, output_model_path=path, batch_size=batch_size, epochs_num=epochs_num),
                             combo_engines)
        results.append(result["dev"])
        paths.append(path)
        rows.append([str(batch_size), f"{learning_rate:g}", str(epochs_num), str(result["dev"]["epoch"]),
                     f"{result['dev']['accuracy']:.4f}", f"{result['dev']['macro_f1']:.4f}"])
    best = max(range(len(combos)), key=lambda i: (results[i]["accuracy"], -i))     # ties: the first
    batch_size, learning_rate, epochs_num = combos[best]
    summary = {"batch_size": batch_size, "learning_rate": learning_rate, "epochs_num": epochs_num}
    test_scores = None
    if engines.rank == 0:
        for suffix in ("",) + MODEL_COMPANIONS:
            source = paths[best] + suffix
            if suffix != ".lock" and os.path.exists(source):
                os.replace(source, args.output_model_path + suffix)
        shutil.rmtree(work, ignore_errors=True)
        marks = ["*" if i == best else "" for i in range(len(combos))]
        print(_table(["batch_size", "learning_rate", "epochs_num", "best_epoch", "dev_acc", "dev_macro_f1", "best"],
                     [r + [m] for r, m in zip(rows, marks)]))
        print("Best Acc. is: {:.4f}, on configuration {}.".format(results[best]["accuracy"], summary))
    if engines.world_size > 1:
        torch.distributed.barrier()        # the best model is in place before any rank reads it
    if test is not None:
        outputs = predict_saved(task, args.output_model_path, test, engines, batch_size)
        test_scores = task.evaluate(test, outputs)
        if engines.rank == 0:
            print(f"test {task.summary(test_scores)} (best combination)")
    return {"grid": [dict(zip(("batch_size", "learning_rate", "epochs_num"), c), **r) for c, r in zip(combos, results)],
            "best": dict(summary, **results[best]), "test": test_scores}


mt_finetune = cli_entry(finetune_mt)
mt_infer = infer_main("classification_mt")
cv_finetune = cli_entry(finetune_cv)
grid_finetune = cli_entry(finetune_grid)
