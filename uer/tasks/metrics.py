"""Classification metrics."""

from typing import Dict, Sequence

import numpy as np


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
