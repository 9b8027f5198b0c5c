"""Confusion matrix / per-class report, multi-label, regression and ranking metrics on hand-computed cases."""

import numpy as np
import pytest

from uer.errors import DataError
from uer.tasks.metrics import (average_ranks, confusion_matrix, format_confusion, multi_label_metrics,
                               per_class_report, ranking_metrics, regression_metrics)

GOLD = [0, 0, 1, 2, 2, 2]
PRED = [0, 1, 1, 2, 0, 2]


# ---------------------------------------------------------------- confusion / per class

def test_confusion_matrix_rows_are_gold_columns_predicted():
    m = confusion_matrix(GOLD, PRED, 4)
    assert m.tolist() == [[1, 1, 0, 0],
                          [0, 1, 0, 0],
                          [1, 0, 2, 0],
                          [0, 0, 0, 0]]
    assert m.dtype == np.int64 and m.sum() == len(GOLD)


def test_per_class_report_by_hand():
    report = per_class_report(GOLD, PRED, 4)
    want = [(0, 0.5, 0.5, 0.5, 2), (1, 0.5, 1.0, 2 / 3, 1), (2, 1.0, 2 / 3, 0.8, 3), (3, 0.0, 0.0, 0.0, 0)]
    assert [r["label"] for r in report] == [0, 1, 2, 3]
    for r, (label, p, rec, f1, support) in zip(report, want):
        assert r["precision"] == pytest.approx(p) and r["recall"] == pytest.approx(rec)
        assert r["f1"] == pytest.approx(f1) and r["support"] == support, label


def test_per_class_report_constant_predictions_and_empty():
    report = per_class_report([0, 1, 1], [1, 1, 1], 2)
    assert report[0] == {"label": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report[1]["precision"] == pytest.approx(2 / 3) and report[1]["recall"] == 1.0
    assert report[1]["f1"] == pytest.approx(0.8)
    empty = per_class_report([], [], 2)
    assert [r["support"] for r in empty] == [0, 0] and all(r["f1"] == 0.0 for r in empty)
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_confusion_errors_name_the_problem():
    with pytest.raises(DataError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(DataError, match="2 labels but 1 predictions"):
        confusion_matrix([0, 1], [0], 3)


def test_format_confusion_lines():
    m = confusion_matrix(GOLD, PRED, 3)
    text = format_confusion(m, per_class_report(GOLD, PRED, 3))
    lines = text.split("\n")
    assert lines[0].startswith("Confusion matrix (rows: gold, columns: predicted)")
    assert [int(v) for v in lines[4].split()] == [2, 1, 0, 2]          # row label 2: 1 0 2
    assert lines[5].split()[0] == "Label"
    assert lines[8].split() == ["2", "1.0000", "0.6667", "0.8000", "3"]
    assert len(lines) == 2 + 3 + 1 + 3


# ---------------------------------------------------------------- multi-label

def test_multi_label_by_hand():
    gold = [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 0]]
    pred = [[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]]
    m = multi_label_metrics(gold, pred)
    assert m["micro_precision"] == pytest.approx(3 / 4)
    assert m["micro_recall"] == pytest.approx(3 / 5)
    assert m["micro_f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)   # column 3 occurs nowhere: left out
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["examples"] == 3


def test_multi_label_edge_cases():
    all_right = multi_label_metrics([[1, 0], [0, 0]], [[1, 0], [0, 0]])
    assert all_right["micro_f1"] == 1.0 and all_right["macro_f1"] == 1.0 and all_right["subset_accuracy"] == 1.0
    nothing = multi_label_metrics([[0, 0], [0, 0]], [[0, 0], [0, 0]])      # no labels anywhere: exact match
    assert nothing["micro_f1"] == 0.0 and nothing["macro_f1"] == 0.0 and nothing["subset_accuracy"] == 1.0
    none_predicted = multi_label_metrics([[1, 1]], [[0, 0]])
    assert none_predicted["micro_precision"] == 0.0 and none_predicted["micro_recall"] == 0.0
    empty = multi_label_metrics(np.zeros((0, 3)), np.zeros((0, 3)))
    assert empty["examples"] == 0 and empty["micro_f1"] == 0.0
    with pytest.raises(DataError, match="same"):
        multi_label_metrics([[1, 0]], [[1, 0, 0]])
    with pytest.raises(DataError, match="only 0 and 1"):
        multi_label_metrics([[1, 0]], [[0.7, 0]])


# ---------------------------------------------------------------- regression

def test_regression_by_hand():
    m = regression_metrics([1, 2, 3, 4], [1, 3, 2, 4])
    assert m["mse"] == pytest.approx(0.5)
    assert m["pearson"] == pytest.approx(0.8)          # sum(dx dy) = 4, sum dx^2 = sum dy^2 = 5
    assert m["spearman"] == pytest.approx(0.8)         # the values are their own ranks
    assert m["examples"] == 4
    anti = regression_metrics([1, 2, 3], [30, 20, 10])
    assert anti["pearson"] == pytest.approx(-1.0) and anti["spearman"] == pytest.approx(-1.0)
    monotone = regression_metrics([1, 2, 3, 4], [1, 8, 27, 64])   # not linear but perfectly monotone
    assert monotone["spearman"] == pytest.approx(1.0) and monotone["pearson"] < 0.99


def test_average_ranks_and_spearman_with_ties():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]
    assert average_ranks([3, 1, 2, 1]).tolist() == [4.0, 1.5, 3.0, 1.5]
    # pred ranks [1, 2.5, 2.5, 4]: sum dx dy = 4.5, sum dx^2 = 5, sum dy^2 = 4.5 -> sqrt(0.9)
    assert regression_metrics([1, 2, 3, 4], [1, 2, 2, 3])["spearman"] == pytest.approx(np.sqrt(0.9))


def test_constant_vectors_give_zero_correlation_not_nan():
    m = regression_metrics([1, 2, 3, 4], [2, 2, 2, 2])
    assert m["pearson"] == 0.0 and m["spearman"] == 0.0 and m["mse"] == pytest.approx(1.5)
    assert regression_metrics([7, 7], [1, 2])["pearson"] == 0.0
    single = regression_metrics([3.0], [1.0])
    assert single["pearson"] == 0.0 and single["mse"] == 4.0
    assert regression_metrics([], []) == {"mse": 0.0, "pearson": 0.0, "spearman": 0.0, "examples": 0}
    with pytest.raises(DataError, match="one per example"):
        regression_metrics([1, 2], [1])


def test_regression_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 5, size=40).astype(float)               # many ties
    pred = gold + rng.normal(0, 1.5, size=40).round(0)               # ties on this side too
    m = regression_metrics(gold, pred)
    assert m["pearson"] == pytest.approx(stats.pearsonr(gold, pred)[0], abs=1e-12)
    assert m["spearman"] == pytest.approx(stats.spearmanr(gold, pred)[0], abs=1e-12)
    assert np.allclose(average_ranks(pred), stats.rankdata(pred, method="average"))


# ---------------------------------------------------------------- ranking (DBQA)

def test_ranking_map_mrr_by_hand():
    groups = {
        "q1": [(0.9, 1), (0.8, 0), (0.3, 1)],            # correct at ranks 1, 3: AP (1 + 2/3)/2, RR 1
        "q2": [(0.1, 1), (0.5, 0)],                      # correct at rank 2: AP 1/2, RR 1/2
        "q3": [(0.6, 1), (0.7, 1), (0.1, 0)],            # ranks 1, 2: AP 1, RR 1
        "q4": [(0.4, 0), (0.2, 0)],                      # no correct answer: skipped
    }
    m = ranking_metrics(groups)
    assert m["map"] == pytest.approx((5 / 6 + 1 / 2 + 1) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert m["questions"] == 3 and m["skipped"] == 1


def test_ranking_ties_keep_input_order_and_empty():
    assert ranking_metrics({"q": [(0.5, 0), (0.5, 1)]})["mrr"] == 0.5
    assert ranking_metrics({"q": [(0.5, 1), (0.5, 0)]})["mrr"] == 1.0
    assert ranking_metrics({}) == {"map": 0.0, "mrr": 0.0, "questions": 0, "skipped": 0}
    only_negatives = ranking_metrics({"q": [(0.3, 0)]})
    assert only_negatives["map"] == 0.0 and only_negatives["skipped"] == 1
