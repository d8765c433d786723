"""Rows for DVC plots: ROC curves (linear template, x=fpr, y=tpr) and confusion pairs.

Shapes: labels (N,) int in [0, C); probs (N, C).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from fpnpipe.classes import CLASSES
from fpnpipe.metrics.classification import (
    AurocTask,
    check_predictions,
    detection_task,
    margin_tasks,
    predicted_labels,
)


def task_roc_points(task: AurocTask) -> list[dict[str, float]]:
    """ROC points [{"fpr", "tpr"}, ...] of one AUROC task, from (0, 0) to (1, 1); empty when the task has
    no positives or no negatives. Thresholds are left out (the first one is +inf, which JSON cannot hold)."""
    positive, scores = task.positive[task.included], task.scores[task.included]
    if not positive.any() or positive.all():
        return []
    fpr, tpr, _ = roc_curve(positive, scores)
    return [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)]


def roc_curve_tables(labels: np.ndarray, probs: np.ndarray) -> dict[str, list[dict[str, float]]]:
    """{margin class: ROC points among lesion crops (renormalised margin probabilities), "detection": ROC
    points of lesion vs negative}: the curves behind `auroc.*` and `detection.auroc`. One table per curve
    suits a DVC plot over several files (one series per file)."""
    tables = {name: task_roc_points(task) for name, task in margin_tasks(labels, probs).items()}
    tables["detection"] = task_roc_points(detection_task(labels, probs))
    return tables


def confusion_rows(labels: np.ndarray, probs: np.ndarray) -> list[dict[str, str]]:
    """One row {"actual": class name, "predicted": class name} per test row (all four classes), for DVC's
    confusion template."""
    labels, probs = check_predictions(labels, probs)
    return [
        {"actual": CLASSES[a], "predicted": CLASSES[p]}
        for a, p in zip(labels.tolist(), predicted_labels(probs).tolist(), strict=True)
    ]
