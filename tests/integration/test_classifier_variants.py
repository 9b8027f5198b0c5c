"""UER-py's classification variants on tiny generated data: run_classifier_mt (several datasets, one
head each, per-dataset dev scores, inference per --dataset_id and over every head, a plain
pretrained backbone loaded), run_classifier_cv (folds partition the rows, out-of-fold features in row
order) and run_classifier_grid (every combination, the best kept); bad inputs are one error line."""

import json
import random

import numpy as np
import pytest
import torch

from uer.cli.classifier_variants import (cv_finetune, finetune_cv, finetune_grid, finetune_mt, fold_indices,
                                         fold_model_path, grid_finetune, mt_finetune, mt_infer)
from uer.models.weights import read_weights

WORDS = [f"w{i}" for i in range(12)]
TINY = {"embedding": ["word", "pos", "seg"], "emb_size": 16, "hidden_size": 16, "feedforward_size": 32,
        "heads_num": 2, "layers_num": 1, "max_seq_length": 32, "dropout": 0.0, "target": ["mlm"]}


@pytest.fixture
def files(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY), encoding="utf-8")
    return tmp_path, ["--vocab_path", str(vocab), "--config_path", str(config), "--seq_length", "16",
                      "--report_steps", "1000"]


def tsv(path, rows, header="label\ttext_a"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def dataset(directory, labels_num, n_train, n_dev, seed, test=False):
    """label = (index of the first word) % labels_num: learnable from [CLS] context."""
    rng = random.Random(seed)
    directory.mkdir()

    def rows(n):
        out = []
        for _ in range(n):
            first = rng.randrange(12)
            out.append(f"{first % labels_num}\t{WORDS[first]} {rng.choice(WORDS)} {rng.choice(WORDS)}")
        return out
    tsv(directory / "train.tsv", rows(n_train))
    tsv(directory / "dev.tsv", rows(n_dev))
    if test:
        tsv(directory / "test.tsv", rows(n_dev))
    return str(directory)


def one_error_line(capsys, entry, argv, *needles):
    with pytest.raises(SystemExit) as exit_info:
        entry(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    return err[-1]


# ------------------------------------------------------------------------------------------------ mt

def test_mt_trains_every_head_scores_each_dataset_and_infers_per_dataset_id(files, capsys):
    tmp, common = files
    a = dataset(tmp / "a", 2, 48, 12, 1, test=True)
    b = dataset(tmp / "b", 3, 24, 9, 2, test=True)
    out = str(tmp / "mt.bin")
    results = finetune_mt(common + ["--dataset_path_list", a, b, "--output_model_path", out, "--epochs_num", "2",
                                    "--batch_size", "8", "--learning_rate", "1e-3"])
    dev = results["dev"]
    assert dev["examples"] == 21 and dev["accuracy"] == pytest.approx((dev["accuracy_0"] + dev["accuracy_1"]) / 2)
    assert results["test"]["examples"] == 21
    printed = capsys.readouterr().out
    assert "dataset_id" in printed and a in printed and b in printed
    saved = json.load(open(out + ".task.json"))
    assert saved["task"] == "classification_mt" and saved["head_options"]["labels_num_list"] == [2, 3]
    weights = read_weights(out)
    assert weights["head.heads.0.linear_2.weight"].shape[0] == 2 and weights["head.heads.1.linear_2.weight"].shape[0] == 3

    infer_file = tsv(tmp / "infer.tsv", ["w1 w2", "w5 w3 w3", "w7"], header="text_a")
    for dataset_id, labels in ((0, 2), (1, 3)):
        prediction = str(tmp / f"pred{dataset_id}.tsv")
        mt_infer(["--vocab_path", common[1], "--load_model_path", out, "--test_path", infer_file,
                  "--prediction_path", prediction, "--dataset_id", str(dataset_id), "--output_prob"])
        lines = open(prediction, encoding="utf-8").read().splitlines()
        assert lines[0] == "label\tprob" and len(lines) == 4
        for line in lines[1:]:
            label, prob = line.split("\t")
            assert 0 <= int(label) < labels and len(prob.split()) == labels
    every = str(tmp / "pred_all.tsv")
    mt_infer(["--vocab_path", common[1], "--load_model_path", out, "--test_path", infer_file,
              "--prediction_path", every, "--output_logits"])
    lines = open(every, encoding="utf-8").read().splitlines()
    assert lines[0] == "label\tlogits"
    for line in lines[1:]:                                   # UER-py's "a|b" columns, one field per head
        labels, logits = line.split("\t")
        assert len(labels.split("|")) == 2 and [len(x.split()) for x in logits.split("|")] == [2, 3]
    # the per-head file agrees with head 0's column of the all-heads file
    head0 = [line.split("\t")[0] for line in open(str(tmp / "pred0.tsv")).read().splitlines()[1:]]
    assert head0 == [line.split("\t")[0].split("|")[0] for line in lines[1:]]


def test_mt_mixes_datasets_in_batches_and_starts_from_a_plain_pretrained_backbone(files):
    from uer.config import config_from_dict, save_config
    from uer.models import build_model
    from uer.models.weights import save_state
    from uer.tasks.multi_task import MultiClassifierHead, MultiTaskCollator
    tmp, common = files
    config = config_from_dict(dict(TINY, vocab_size=5 + len(WORDS)))
    torch.manual_seed(0)
    base = str(tmp / "base.bin")
    save_state(build_model(config).state_dict(), base)
    save_config(config, base + ".config.json")
    a, b = dataset(tmp / "a", 2, 32, 8, 3), dataset(tmp / "b", 2, 32, 8, 4)
    out = str(tmp / "mt.bin")
    finetune_mt(["--vocab_path", common[1], "--seq_length", "16", "--pretrained_model_path", base,
                 "--dataset_path_list", a, b, "--output_model_path", out, "--epochs_num", "1", "--batch_size", "16",
                 "--loss_scaling"])
    pretrained, tuned = read_weights(base), read_weights(out)
    assert not torch.equal(pretrained["embedding.word.embedding.weight"], tuned["embedding.word.embedding.weight"])
    # the head picks each row's own dataset head: a mixed batch equals its rows run one dataset at a time
    head = MultiClassifierHead(config_from_dict(dict(TINY, vocab_size=17)), [2, 3]).eval()
    hidden, seg = torch.randn(4, 5, 16), torch.ones(4, 5, dtype=torch.long)
    ids = torch.tensor([0, 1, 1, 0])
    mixed = head(hidden, {"seg": seg, "dataset_id": ids})
    assert mixed.shape == (4, 3) and torch.all(mixed[ids == 0, 2] < -1e3)
    assert torch.allclose(mixed[1, :3], head.heads[1](hidden, seg)[1])
    batch = MultiTaskCollator(0)([{"src": np.array([2, 5, 3]), "label": 1, "dataset": 1},
                                  {"src": np.array([2, 6, 3]), "label": 0, "dataset": 0}])
    assert batch["dataset_id"].tolist() == [1, 0]


def test_mt_bad_inputs_are_one_error_naming_the_flag_or_file(files, capsys):
    tmp, common = files
    a = dataset(tmp / "a", 2, 16, 8, 5)
    (tmp / "empty").mkdir()
    one_error_line(capsys, mt_finetune, common + ["--dataset_path_list", a, str(tmp / "empty"),
                                                  "--output_model_path", str(tmp / "x.bin")],
                   "--dataset_path_list", "entry 1", "train.tsv", str(tmp / "empty"))
    assert not (tmp / "x.bin").exists()
    out = str(tmp / "mt.bin")
    mt_finetune(common + ["--dataset_path_list", a, "--output_model_path", out, "--epochs_num", "1",
                          "--batch_size", "8"])
    infer_file = tsv(tmp / "infer.tsv", ["w1 w2"], header="text_a")
    one_error_line(capsys, mt_infer, ["--vocab_path", common[1], "--load_model_path", out, "--test_path", infer_file,
                                      "--prediction_path", str(tmp / "p.tsv"), "--dataset_id", "1"],
                   "--dataset_id 1", "1 classifier heads")
    one_error_line(capsys, mt_infer, ["--vocab_path", common[1], "--load_model_path", out, "--test_path", infer_file,
                                      "--prediction_path", str(tmp / "p.tsv"), "--labels_num_list", "2", "3"],
                   "--labels_num_list")


# ------------------------------------------------------------------------------------------------ cv

def test_cv_folds_partition_the_rows_and_write_out_of_fold_features(files, capsys):
    for n, k in ((10, 3), (10, 4), (10, 6), (7, 7)):        # UER-py's n // k + 1 folds leave the last empty for (10, 6)
        folds = fold_indices(n, k)
        assert len(folds) == k and all(len(f) >= 1 for f in folds)
        assert sorted(np.concatenate(folds).tolist()) == list(range(n))
    assert fold_model_path("models/classifier_model.bin", 2) == "models/classifier_model-fold_2.bin"

    tmp, common = files
    rng = random.Random(6)
    rows = [f"{i % 3}\t{WORDS[(i * 7) % 12]} {rng.choice(WORDS)}" for i in range(30)]
    train = tsv(tmp / "train.tsv", rows)
    out, features = str(tmp / "cv.bin"), str(tmp / "features.npy")
    results = finetune_cv(common + ["--train_path", train, "--output_model_path", out, "--folds_num", "3",
                                    "--train_features_path", features, "--epochs_num", "1", "--batch_size", "8"])
    assert len(results["folds"]) == 3 and [f["examples"] for f in results["folds"]] == [10, 10, 10]
    assert results["mean"]["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in results["folds"]]))
    saved = np.load(features)
    assert saved.shape == (30, 3) and np.allclose(saved.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(saved, results["features"])
    for fold in range(3):
        assert (tmp / f"cv-fold_{fold}.bin").is_file() and (tmp / f"cv-fold_{fold}.bin.task.json").is_file()
    # fold 0's model on its held-out rows gives exactly the rows 0..9 of the features
    from uer.cli.tasks import infer
    held = tsv(tmp / "held.tsv", [r.split("\t", 1)[1] for r in rows[:10]], header="text_a")
    infer("classification", ["--vocab_path", common[1], "--load_model_path", str(tmp / "cv-fold_0.bin"),
                             "--test_path", held, "--prediction_path", str(tmp / "p.tsv"), "--output_prob"])
    probs = np.array([[float(v) for v in line.split("\t")[1].split()]
                      for line in open(tmp / "p.tsv").read().splitlines()[1:]])
    assert np.allclose(probs, saved[:10], atol=1e-5)
    printed = capsys.readouterr().out
    assert "Acc. : " in printed and "fold" in printed


def test_cv_bad_folds_num_is_one_error_naming_the_flag(files, capsys):
    tmp, common = files
    train = tsv(tmp / "train.tsv", [f"{i % 2}\tw{i} w1" for i in range(5)])
    for folds, needle in (("1", "at least 2 folds"), ("6", "exceeds the 5 examples")):
        one_error_line(capsys, cv_finetune, common + ["--train_path", train, "--folds_num", folds,
                                                      "--output_model_path", str(tmp / "cv.bin")],
                       f"--folds_num {folds}", needle)
    assert not list(tmp.glob("cv*"))


# ------------------------------------------------------------------------------------------------ grid

def test_grid_visits_every_combination_and_keeps_the_best(files, capsys):
    tmp, common = files
    rng = random.Random(7)
    rows = [f"{i % 2}\t{WORDS[(i * 5) % 12]} {rng.choice(WORDS)}" for i in range(32)]
    train, dev = tsv(tmp / "train.tsv", rows[:24]), tsv(tmp / "dev.tsv", rows[24:])
    out = str(tmp / "grid.bin")
    results = finetune_grid(common + ["--train_path", train, "--dev_path", dev, "--test_path", dev,
                                      "--output_model_path", out, "--batch_size_list", "8", "12",
                                      "--learning_rate_list", "1e-5", "3e-3", "--epochs_num_list", "1", "2"])
    visited = {(g["batch_size"], g["learning_rate"], g["epochs_num"]) for g in results["grid"]}
    assert visited == {(b, lr, e) for b in (8, 12) for lr in (1e-5, 3e-3) for e in (1, 2)}
    best = max(results["grid"], key=lambda g: g["accuracy"])
    assert results["best"]["accuracy"] == best["accuracy"]
    assert results["test"]["accuracy"] == pytest.approx(results["best"]["accuracy"])   # the best model was kept
    assert (tmp / "grid.bin").is_file() and not (tmp / "grid.bin.grid").exists()
    assert json.load(open(out + ".task.json"))["epoch"] == results["best"]["epoch"]
    printed = capsys.readouterr().out
    assert printed.count("\n") >= 9 and "Best Acc. is: " in printed


def test_grid_bad_list_value_is_one_error(files, capsys):
    tmp, common = files
    train = tsv(tmp / "train.tsv", [f"{i % 2}\tw{i} w1" for i in range(8)])
    one_error_line(capsys, grid_finetune, common + ["--train_path", train, "--dev_path", train,
                                                    "--output_model_path", str(tmp / "g.bin"),
                                                    "--batch_size_list", "8", "0"], "--batch_size_list")
