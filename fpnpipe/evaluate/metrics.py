"""Point classification metrics on the test split: AUROC per class, accuracy, confusion matrix.

Shapes: N test rows, C = len(CLASSES) classes. `labels` (N,) int in [0, C); `probs` (N, C) float, one row
per test row (rows are expected to sum to 1 but nothing here relies on it).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from fpnpipe.classes import CLASSES, MARGIN_CLASSES

N_CLASSES: int = len(CLASSES)
MARGIN_INDICES: np.ndarray = np.array([CLASSES.index(name) for name in MARGIN_CLASSES])
AVERAGE: str = "average"
"""Key of the mean of the three margin classes' AUROCs (paper Table 1)."""


def check_predictions(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (labels (N,) int64, probs (N, C) float64); ValueError says what is wrong."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers (indices into {CLASSES}), got dtype {labels.dtype}")
    if probs.shape != (labels.size, N_CLASSES):
        raise ValueError(f"probs must have shape ({labels.size}, {N_CLASSES}), got {probs.shape}")
    if labels.min() < 0 or labels.max() >= N_CLASSES:
        raise ValueError(f"labels must lie in [0, {N_CLASSES}), got values {labels.min()}..{labels.max()}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs contain NaN or infinite values")
    return labels.astype(np.int64), probs


def predicted_labels(probs: np.ndarray) -> np.ndarray:
    """(N,) int64 arg-max class per row of probs (N, C); a tie goes to the lower class index."""
    return np.argmax(np.asarray(probs), axis=1).astype(np.int64)


def auroc_one_vs_rest(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) one-vs-rest AUROC of each class, scored by its own probability column.

    A class that is absent from `labels`, or is the only class present, has no AUROC: NaN.
    """
    labels, probs = check_predictions(labels, probs)
    out = np.full(N_CLASSES, np.nan)
    for c in range(N_CLASSES):
        positive = labels == c
        if positive.any() and not positive.all():
            out[c] = roc_auc_score(positive, probs[:, c])
    return out


def margin_average(aurocs: np.ndarray) -> np.ndarray:
    """Mean over the margin classes of per-class AUROCs (..., C) -> (...); NaN if any margin class is NaN.

    The paper's "average AUROC" (Table 1) is this mean; an average over fewer classes would not be the same
    quantity, so a missing margin class makes the average undefined rather than silently smaller.
    """
    return np.asarray(aurocs, dtype=np.float64)[..., MARGIN_INDICES].mean(axis=-1)


def auroc_table(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """{class name: AUROC} for every class in CLASSES order, then {"average": margin mean}; NaN if undefined."""
    per_class = auroc_one_vs_rest(labels, probs)
    table = {name: float(value) for name, value in zip(CLASSES, per_class, strict=True)}
    table[AVERAGE] = float(margin_average(per_class))
    return table


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of rows whose arg-max class equals the label."""
    labels, probs = check_predictions(labels, probs)
    return float(np.mean(predicted_labels(probs) == labels))


def balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean recall over the classes present in `labels` (sklearn's balanced_accuracy_score)."""
    labels, probs = check_predictions(labels, probs)
    with warnings.catch_warnings():
        # sklearn warns when a predicted class never occurs in the labels; recall is still well defined.
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(labels, predicted_labels(probs)))


def confusion(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C, C) int64 confusion counts, rows = true class, columns = predicted class, in CLASSES order."""
    labels, probs = check_predictions(labels, probs)
    return confusion_matrix(labels, predicted_labels(probs), labels=np.arange(N_CLASSES)).astype(np.int64)
