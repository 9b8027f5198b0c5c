"""Distillation loss against a hand computation; teacher logits from prediction files and UER-py train TSVs."""

import math

import numpy as np
import pytest
import torch

from uer.errors import ConfigError, DataError
from uer.tasks.distillation import distillation_loss, parse_logits, read_teacher_logits

STUDENT = [[1.0, 0.0], [0.0, 2.0]]
TEACHER = [[2.0, 0.0], [0.0, 0.0]]
LABELS = [0, 1]


def tensors():
    return (torch.tensor(STUDENT, requires_grad=True), torch.tensor(TEACHER, requires_grad=True),
            torch.tensor(LABELS))


def hand_cross_entropy():
    # row 0: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1); row 1: log(1 + e^-2)
    return (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 2


def test_mse_default_matches_uer_py_formula_by_hand():
    student, teacher, labels = tensors()
    loss = distillation_loss(student, teacher, labels, alpha=0.25)
    mse = (1 + 0 + 0 + 4) / 4                             # (1-2)^2, 0, 0, (2-0)^2 over 4 logits
    assert loss.item() == pytest.approx(0.25 * mse + 0.75 * hand_cross_entropy(), rel=1e-6)
    loss.backward()
    assert teacher.grad is None                           # the teacher is a constant
    # d/ds of 0.25 * mean((s - t)^2) at s[1,1]: 0.25 * 2 * (2 - 0) / 4, plus the CE part
    ce_grad = torch.softmax(torch.tensor(STUDENT), -1)[1, 1].item() - 1
    assert student.grad[1, 1].item() == pytest.approx(0.25 * 2 * 2 / 4 + 0.75 * ce_grad / 2, rel=1e-5)


def test_alpha_ends():
    student, teacher, labels = tensors()
    assert distillation_loss(student, teacher, labels, 0.0).item() == pytest.approx(hand_cross_entropy(), rel=1e-6)
    assert distillation_loss(student, teacher, labels, 1.0).item() == pytest.approx(1.25, rel=1e-6)
    assert distillation_loss(student, teacher, torch.tensor([1, 0]), 1.0).item() == pytest.approx(1.25)


def softmax(row):
    z = [math.exp(v) for v in row]
    return [v / sum(z) for v in z]


def test_kl_with_temperature_by_hand():
    student, teacher, labels = tensors()
    T = 2.0
    kl = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER):
        p = softmax([v / T for v in t_row])
        q = softmax([v / T for v in s_row])
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    want = 0.5 * (T * T * kl / 2) + 0.5 * hand_cross_entropy()
    got = distillation_loss(student, teacher, labels, alpha=0.5, temperature=T, soft_loss="kl")
    assert got.item() == pytest.approx(want, rel=1e-6)
    same = distillation_loss(teacher.detach(), teacher, labels, alpha=1.0, soft_loss="kl")
    assert same.item() == pytest.approx(0.0, abs=1e-7)     # a student equal to its teacher: no soft loss


def test_loss_is_float32_under_bfloat16_logits():
    student, teacher, labels = tensors()
    loss = distillation_loss(student.to(torch.bfloat16), teacher.to(torch.bfloat16), labels, 0.5)
    assert loss.dtype == torch.float32


def test_bad_settings_are_config_errors():
    student, teacher, labels = tensors()
    with pytest.raises(ConfigError, match="--soft_alpha"):
        distillation_loss(student, teacher, labels, alpha=1.5)
    with pytest.raises(ConfigError, match="only to the KL"):
        distillation_loss(student, teacher, labels, alpha=0.5, temperature=2.0)
    with pytest.raises(ConfigError, match="mse, kl"):
        distillation_loss(student, teacher, labels, alpha=0.5, soft_loss="l1")
    with pytest.raises(DataError, match="labels_num"):
        distillation_loss(student, torch.zeros(2, 3), labels, alpha=0.5)


# ---------------------------------------------------------------- reading teacher logits

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_a_prediction_file_of_run_classifier_infer(tmp_path):
    path = write(tmp_path / "pred.tsv", "label\tlogits\tprob\n"
                 "1\t-0.500000 1.250000\t0.148047 0.851953\n"
                 "0\t2.000000 -3.000000\t0.993307 0.006693\n")
    logits = read_teacher_logits(path, examples_num=2, labels_num=2)
    assert logits.dtype == np.float32
    assert logits.tolist() == [[-0.5, 1.25], [2.0, -3.0]]
    assert read_teacher_logits(path, None, None).shape == (2, 2)


def test_reads_the_logits_column_of_a_uer_py_train_file(tmp_path):
    path = write(tmp_path / "train.tsv", "label\ttext_a\tlogits\n"
                 "0\tgood book\t1.5 -0.5 0.25\n"
                 "2\tbad book\t-1 0 3\n")
    assert read_teacher_logits(path, 2, 3).tolist() == [[1.5, -0.5, 0.25], [-1.0, 0.0, 3.0]]
    assert parse_logits("1.5 -0.5 0.25", path, 2, 3).tolist() == [1.5, -0.5, 0.25]


def test_errors_name_the_file_and_line(tmp_path):
    wrong_count = write(tmp_path / "a.tsv", "label\tlogits\n0\t1 2\n1\t1 2 3\n")
    with pytest.raises(DataError, match=r"a.tsv line 3: 3 logits, expected 2"):
        read_teacher_logits(wrong_count, 2, 2)
    with pytest.raises(DataError, match=r"a.tsv line 3: 3 logits but line 2 has 2"):
        read_teacher_logits(wrong_count, 2, None)
    not_numbers = write(tmp_path / "b.tsv", "label\tlogits\n0\t1 2\n1\t1 x\n")
    with pytest.raises(DataError, match=r"b.tsv line 3: logits '1 x' are not space-separated numbers"):
        read_teacher_logits(not_numbers, 2, 2)
    with pytest.raises(DataError, match=r"--soft_targets_path .*c.tsv has 1 rows of logits but the training file "
                                        r"has 2 examples"):
        read_teacher_logits(write(tmp_path / "c.tsv", "label\tlogits\n0\t1 2\n"), 2, 2, flag="--soft_targets_path")
    with pytest.raises(DataError, match=r"d.tsv line 1: header .* lacks column\(s\) \['logits'\]"):
        read_teacher_logits(write(tmp_path / "d.tsv", "label\tprob\n0\t0.5 0.5\n"), 1, 2)
    with pytest.raises(DataError, match=r"e.tsv line 2: .*NaN"):
        read_teacher_logits(write(tmp_path / "e.tsv", "label\tlogits\n0\tnan 1\n"), 1, 2)
    with pytest.raises(DataError, match=r"f.tsv line 2: 0 logits"):
        read_teacher_logits(write(tmp_path / "f.tsv", "label\tlogits\n0\t \n"), 1, 2)


def test_round_trip_through_the_classifier_prediction_writer(tmp_path):
    """The file inference writes with --output_logits (and --output_prob) reads back to the same logits."""
    from uer.tasks.classification import format_predictions
    logits = np.array([[0.125, -2.5, 3.0], [1.0, 0.0, -0.75]], dtype=np.float32)
    path = tmp_path / "pred.tsv"
    path.write_text("\n".join(format_predictions(logits, True, True)) + "\n", encoding="utf-8")
    assert np.array_equal(read_teacher_logits(str(path), 2, 3), logits)
