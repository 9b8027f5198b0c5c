"""Classification and sequence-labelling metrics."""

from typing import Dict, Sequence, Set, Tuple

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
