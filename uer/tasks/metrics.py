"""Classification, sequence-labelling, multi-label, regression and answer-ranking metrics (pure numpy)."""

from typing import Dict, List, Mapping, Sequence, Set, Tuple

import numpy as np

from uer.errors import DataError


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> Dict[str, float]:
    """Accuracy and macro-F1 over the classes that occur in labels or predictions."""
    y, p = np.asarray(labels), np.asarray(predictions)
    if y.size == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "examples": 0}
    f1s = []
    for c in np.union1d(y, p):
        tp = np.sum((p == c) & (y == c))
        precision = tp / max(1, np.sum(p == c))
        recall = tp / max(1, np.sum(y == c))
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return {"accuracy": float(np.mean(y == p)), "macro_f1": float(np.mean(f1s)), "examples": int(y.size)}


def bio_entities(tags: Sequence[str]) -> Set[Tuple[str, int, int]]:
    """(type, start, end) of every entity in a BIO sequence, end exclusive.  As in conlleval, an I- tag
    that does not continue an entity of its type (after O, or after another type) starts a new one; a
    tag without a B-/I- prefix (other than O) counts as I- of that type."""
    entities, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-") if tag[:2] in ("B-", "I-") else ("I", "", tag)
        continues = prefix == "I" and name == kind and tag != "O"
        if kind is not None and not continues:
            entities.add((kind, start, i))
            kind = None
        if tag != "O" and not continues:
            start, kind = i, name
    return entities


def entity_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Dict[str, float]:
    """Entity-level precision/recall/F1 (an entity counts when its span and type match exactly) and
    token accuracy, summed over all sentences."""
    correct = found = wanted = right = tokens = 0
    for g, p in zip(gold, predicted):
        ge, pe = bio_entities(g), bio_entities(p)
        correct, found, wanted = correct + len(ge & pe), found + len(pe), wanted + len(ge)
        right += sum(a == b for a, b in zip(g, p))
        tokens += len(g)
    precision = correct / found if found else 0.0
    recall = correct / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": right / tokens if tokens else 0.0,
            "entities": wanted, "examples": len(gold)}


# ---------------------------------------------------------------- classification: confusion and per-class

def _class_ids(values, labels_num: int, name: str) -> np.ndarray:
    ids = np.asarray(values, dtype=np.int64).reshape(-1)
    bad = ids[(ids < 0) | (ids >= labels_num)]
    if bad.size:
        raise DataError(f"{name} holds class id {int(bad[0])}, outside 0..{labels_num - 1} (labels_num "
                        f"{labels_num}); fix the labels or pass the right --labels_num")
    return ids


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], labels_num: int) -> np.ndarray:
    """(labels_num, labels_num) int64 counts, ``matrix[gold, predicted]`` (rows gold, as scikit-learn).
    UER-py's run_classifier prints the transpose (``confusion[pred, gold]``)."""
    y = _class_ids(labels, labels_num, "labels")
    p = _class_ids(predictions, labels_num, "predictions")
    if y.size != p.size:
        raise DataError(f"{y.size} labels but {p.size} predictions; they must be one per example")
    matrix = np.zeros((labels_num, labels_num), dtype=np.int64)
    np.add.at(matrix, (y, p), 1)
    return matrix


def _prf(tp, predicted, wanted) -> Tuple[float, float, float]:
    """Precision, recall, F1, each 0.0 where its denominator is 0."""
    precision = tp / predicted if predicted else 0.0
    recall = tp / wanted if wanted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def per_class_report(labels: Sequence[int], predictions: Sequence[int], labels_num: int) -> List[dict]:
    """One dict per class id 0..labels_num-1: ``label, precision, recall, f1, support`` (support = gold
    count).  A class never predicted has precision 0.0, one never in gold recall 0.0 (no NaN)."""
    matrix = confusion_matrix(labels, predictions, labels_num)
    report = []
    for c in range(labels_num):
        precision, recall, f1 = _prf(matrix[c, c], matrix[:, c].sum(), matrix[c, :].sum())
        report.append({"label": c, "precision": precision, "recall": recall, "f1": f1,
                       "support": int(matrix[c, :].sum())})
    return report


def format_confusion(matrix: np.ndarray, per_class: Sequence[dict]) -> str:
    """Log lines: the confusion matrix (rows gold, columns predicted) then P/R/F1/support per label."""
    matrix = np.asarray(matrix)
    width = max(5, len(str(int(matrix.max()))) if matrix.size else 1, len(str(len(matrix) - 1)) + 1)
    lines = ["Confusion matrix (rows: gold, columns: predicted):",
             " " * 6 + "".join(f"{c:>{width + 1}}" for c in range(len(matrix)))]
    for c, row in enumerate(matrix):
        lines.append(f"{c:>6}" + "".join(f"{int(v):>{width + 1}}" for v in row))
    lines.append("Label  precision  recall  f1      support")
    for r in per_class:
        lines.append(f"{r['label']:<6} {r['precision']:<10.4f} {r['recall']:<7.4f} {r['f1']:<7.4f} {r['support']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- multi-label classification

def multi_label_metrics(gold, predicted) -> Dict[str, float]:
    """Multi-label scores from (N, C) 0/1 matrices (UER-py run_classifier_multi_label.py).

    micro_*: precision/recall/F1 of all (example, class) decisions pooled; macro_f1: the mean per-class
    F1 over the classes that occur in gold or predictions (as ``classification_metrics``: a class absent
    from both says nothing and is left out); subset_accuracy: the share of examples whose whole label
    set is exactly right.  Undefined ratios are 0.0; no examples gives all zeros.
    """
    g, p = np.asarray(gold), np.asarray(predicted)
    if g.shape != p.shape or g.ndim != 2:
        raise DataError(f"multi-label gold {g.shape} and predictions {p.shape} must be the same (examples, "
                        "classes) shape")
    if not (np.isin(g, (0, 1)).all() and np.isin(p, (0, 1)).all()):
        raise DataError("multi-label gold and predictions must hold only 0 and 1 (threshold the scores first)")
    g, p = g.astype(bool), p.astype(bool)
    if g.shape[0] == 0:
        return {"micro_f1": 0.0, "macro_f1": 0.0, "micro_precision": 0.0, "micro_recall": 0.0,
                "subset_accuracy": 0.0, "examples": 0}
    tp = (g & p).sum(0)
    micro_p, micro_r, micro_f1 = _prf(tp.sum(), p.sum(), g.sum())
    occurring = np.flatnonzero(g.any(0) | p.any(0))
    f1s = [_prf(tp[c], p[:, c].sum(), g[:, c].sum())[2] for c in occurring]
    return {"micro_f1": micro_f1, "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
            "micro_precision": micro_p, "micro_recall": micro_r,
            "subset_accuracy": float((g == p).all(1).mean()), "examples": int(g.shape[0])}


# ---------------------------------------------------------------- regression

def average_ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (scipy.stats.rankdata 'average')."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values, and each run's mean 1-based rank.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either vector is constant (the correlation is undefined there:
    0.0 keeps best-dev selection and logs free of NaN and says "no linear relation found")."""
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denominator) if denominator > 0 else 0.0


def regression_metrics(gold, predicted) -> Dict[str, float]:
    """Mean squared error, Pearson and Spearman correlation (UER-py run_regression.py reports Pearson;
    STS-B reports both).  Spearman is Pearson over average ranks, so ties are handled as scipy does.
    A constant gold or predicted vector (or fewer than two examples) gives correlations 0.0, not NaN;
    no examples gives all zeros."""
    g = np.asarray(gold, dtype=np.float64).reshape(-1)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    if g.size != p.size:
        raise DataError(f"{g.size} gold values but {p.size} predictions; they must be one per example")
    if g.size == 0:
        return {"mse": 0.0, "pearson": 0.0, "spearman": 0.0, "examples": 0}
    if not (np.isfinite(g).all() and np.isfinite(p).all()):
        raise DataError("regression gold values or predictions hold NaN or infinity")
    return {"mse": float(np.mean((g - p) ** 2)), "pearson": _pearson(g, p),
            "spearman": _pearson(average_ranks(g), average_ranks(p)), "examples": int(g.size)}


# ---------------------------------------------------------------- answer selection (DBQA)

def ranking_metrics(groups: Mapping[object, Sequence[Tuple[float, int]]]) -> Dict[str, float]:
    """MAP and MRR over questions, ``groups`` mapping a question id to its candidates' (score, label),
    label 1 (or any value > 0) for a correct answer.

    Candidates are ranked by descending score; equal scores keep their input order (a stable sort), so
    the result is deterministic.  Average precision = mean over the correct candidates of (correct ones
    at or above it) / (its rank); reciprocal rank = 1 / (rank of the first correct one).  Questions
    without a correct candidate are skipped (counted in ``skipped``), as in the usual WikiQA/DBQA
    evaluation.  UER-py's run_dbqa.py differs in two ways: it scores such a question 1/(n+1) instead of
    skipping it, and it gives a tied correct answer the best rank among the ties.
    """
    average_precisions, reciprocal_ranks, skipped = [], [], 0
    for candidates in groups.values():
        ranked = sorted(candidates, key=lambda c: -float(c[0]))        # sorted() is stable
        hits = np.asarray([float(label) > 0 for _, label in ranked])
        if not hits.any():
            skipped += 1
            continue
        ranks = np.flatnonzero(hits) + 1                               # 1-based ranks of the correct ones
        average_precisions.append(float(np.mean(np.arange(1, ranks.size + 1) / ranks)))
        reciprocal_ranks.append(1.0 / ranks[0])
    return {"map": float(np.mean(average_precisions)) if average_precisions else 0.0,
            "mrr": float(np.mean(reciprocal_ranks)) if reciprocal_ranks else 0.0,
            "questions": len(average_precisions), "skipped": skipped}
