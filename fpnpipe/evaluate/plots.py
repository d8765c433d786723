"""Rows for DVC plots: one-vs-rest ROC curves (linear template, x=fpr, y=tpr) and confusion pairs.

Shapes: labels (N,) int in [0, C); probs (N, C).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from fpnpipe.classes import CLASSES
from fpnpipe.evaluate.metrics import check_predictions, predicted_labels


def roc_curve_tables(labels: np.ndarray, probs: np.ndarray) -> dict[str, list[dict[str, float]]]:
    """{class name: [{"fpr", "tpr"}, ...]} one-vs-rest ROC points per class, from (0, 0) to (1, 1).

    One table per class suits a DVC plot over a directory of files (one series per file). A class that is
    absent from `labels`, or the only class present, has no curve: an empty list. Thresholds are left out
    (the first one is +inf, which JSON cannot hold).
    """
    labels, probs = check_predictions(labels, probs)
    tables: dict[str, list[dict[str, float]]] = {}
    for c, name in enumerate(CLASSES):
        positive = labels == c
        if not positive.any() or positive.all():
            tables[name] = []
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        tables[name] = [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)]
    return tables


def roc_curve_rows(labels: np.ndarray, probs: np.ndarray) -> list[dict[str, float | str]]:
    """The same points as one flat table: rows {"class", "fpr", "tpr"}, classes in CLASSES order."""
    return [
        {"class": name, **point} for name, points in roc_curve_tables(labels, probs).items() for point in points
    ]


def confusion_rows(labels: np.ndarray, probs: np.ndarray) -> list[dict[str, str]]:
    """One row {"actual": class name, "predicted": class name} per test row, for DVC's confusion template."""
    labels, probs = check_predictions(labels, probs)
    return [
        {"actual": CLASSES[a], "predicted": CLASSES[p]}
        for a, p in zip(labels.tolist(), predicted_labels(probs).tolist(), strict=True)
    ]
