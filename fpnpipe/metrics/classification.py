"""Point classification metrics: margin AUROC among lesions (the paper's Table 1), detection AUROC,
one-vs-rest AUROC over all crops, accuracies and the confusion matrix.

Shapes: N rows, C = len(CLASSES) = 4 classes, M = 3 margin classes. `labels` (N,) int in [0, C); `probs`
(N, C) float, one row per crop (rows are expected to sum to 1 but nothing here relies on it).

Three populations, three questions (DESIGN.md, reports/metrics.json):
- margin: among LESION crops only, how well are circumscribed / indistinct / spiculated told apart? Scored
  by the margin probabilities renormalised over the three margin classes (IAIA-BL's and the paper's
  Table 1 setting). `average` is the mean of the three one-vs-rest AUROCs.
- detection: lesion crop vs negative patch, scored by 1 - p(negative).
- all crops: each class one-vs-rest over every crop, negatives included. Kept under its own name: its
  margin average mostly measures detection, not margins.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from fpnpipe.classes import CLASSES, MARGIN_CLASSES, NEGATIVE_INDEX

N_CLASSES: int = len(CLASSES)
N_MARGINS: int = len(MARGIN_CLASSES)
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
    """(N,) int64 arg-max class per row of probs (N, K); a tie goes to the lower class index."""
    return np.argmax(np.asarray(probs), axis=1).astype(np.int64)


def is_lesion(labels: np.ndarray) -> np.ndarray:
    """(N,) bool: the row is a lesion crop (one of the margin classes), not a negative patch."""
    return np.asarray(labels) != NEGATIVE_INDEX


def margin_probabilities(probs: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, M): the margin columns renormalised to sum to 1 (p_c / (p_circ + p_ind + p_spic)).

    A row whose margin probabilities are all 0 (a model certain of "negative") gets 1/M each."""
    margins = np.asarray(probs, dtype=np.float64)[:, MARGIN_INDICES]
    total = margins.sum(axis=1, keepdims=True)
    return np.divide(margins, total, out=np.full_like(margins, 1.0 / N_MARGINS), where=total > 0)


def detection_scores(probs: np.ndarray) -> np.ndarray:
    """(N, C) -> (N,) lesion score 1 - p(negative)."""
    return 1.0 - np.asarray(probs, dtype=np.float64)[:, NEGATIVE_INDEX]


def binary_auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """AUROC of `scores` for `positive` (N,) bool; NaN when either side is empty."""
    positive = np.asarray(positive, dtype=bool)
    if not positive.any() or positive.all():
        return float("nan")
    return float(roc_auc_score(positive, scores))


@dataclass(frozen=True)
class AurocTask:
    """One AUROC question over the N rows: rows where `included` holds, `positive` among them, ranked by
    `scores`. All arrays (N,)."""

    scores: np.ndarray
    positive: np.ndarray
    included: np.ndarray


def margin_tasks(labels: np.ndarray, probs: np.ndarray) -> dict[str, AurocTask]:
    """{margin class: one-vs-rest task among lesion crops, renormalised margin probability as score}."""
    labels, probs = check_predictions(labels, probs)
    lesions = is_lesion(labels)
    renormalised = margin_probabilities(probs)
    return {name: AurocTask(renormalised[:, k], labels == MARGIN_INDICES[k], lesions)
            for k, name in enumerate(MARGIN_CLASSES)}


def detection_task(labels: np.ndarray, probs: np.ndarray) -> AurocTask:
    """Lesion vs negative over every row, scored by 1 - p(negative)."""
    labels, probs = check_predictions(labels, probs)
    return AurocTask(detection_scores(probs), is_lesion(labels), np.ones(labels.size, dtype=bool))


def task_auroc(task: AurocTask) -> float:
    """AUROC of one task (NaN if a side is empty)."""
    return binary_auroc(task.positive[task.included], task.scores[task.included])


def margin_average(aurocs: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the three margin AUROCs (..., M) -> (...); NaN if any is NaN.

    The paper's "average AUROC" (Table 1) is this mean; an average over fewer classes would not be the same
    quantity, so a missing margin class makes the average undefined rather than silently smaller."""
    return np.asarray(aurocs, dtype=np.float64).mean(axis=-1)


def margin_auroc_table(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """{circumscribed, indistinct, spiculated, average}: one-vs-rest AUROCs among lesion crops only, scored
    by the renormalised margin probabilities; NaN where a class is absent among the lesions or alone."""
    per_class = {name: task_auroc(task) for name, task in margin_tasks(labels, probs).items()}
    return {**per_class, AVERAGE: float(margin_average(np.array(list(per_class.values()))))}


def detection_auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """AUROC of lesion crop vs negative patch, scored by 1 - p(negative); NaN without both."""
    return task_auroc(detection_task(labels, probs))


def auroc_one_vs_rest(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C,) one-vs-rest AUROC of each class over ALL rows, scored by its own probability column.
    A class that is absent from `labels`, or is the only class present, has no AUROC: NaN."""
    labels, probs = check_predictions(labels, probs)
    return np.array([binary_auroc(labels == c, probs[:, c]) for c in range(N_CLASSES)])


def all_crops_auroc_table(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """{class: one-vs-rest AUROC over every crop, negatives included} in CLASSES order, then the mean of the
    three margin classes under "average" (the figure fpnpipe once reported as `auroc.average`)."""
    per_class = auroc_one_vs_rest(labels, probs)
    table = {name: float(value) for name, value in zip(CLASSES, per_class, strict=True)}
    table[AVERAGE] = float(margin_average(per_class[MARGIN_INDICES]))
    return table


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of rows whose arg-max class (of all four) equals the label."""
    labels, probs = check_predictions(labels, probs)
    return float(np.mean(predicted_labels(probs) == labels))


def _balanced(labels: np.ndarray, predicted: np.ndarray) -> float:
    with warnings.catch_warnings():
        # sklearn warns when a predicted class never occurs in the labels; recall is still well defined.
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(labels, predicted))


def balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean recall over the classes present in `labels` (sklearn's balanced_accuracy_score), four classes."""
    labels, probs = check_predictions(labels, probs)
    return _balanced(labels, predicted_labels(probs))


def margin_predictions(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Among lesion rows: (true margin index (L,), arg-max over the three margin probabilities (L,))."""
    labels, probs = check_predictions(labels, probs)
    lesions = is_lesion(labels)
    return labels[lesions], predicted_labels(probs[lesions][:, MARGIN_INDICES])


def margin_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Among lesion crops, the share whose most probable margin class is the true one; NaN without lesions."""
    true, predicted = margin_predictions(labels, probs)
    return float(np.mean(predicted == true)) if true.size else float("nan")


def margin_balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Among lesion crops, the mean recall over the margin classes present, predicting the most probable
    margin class; NaN without lesions."""
    true, predicted = margin_predictions(labels, probs)
    return _balanced(true, predicted) if true.size else float("nan")


def confusion(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(C, C) int64 confusion counts, rows = true class, columns = predicted class, in CLASSES order."""
    labels, probs = check_predictions(labels, probs)
    return confusion_matrix(labels, predicted_labels(probs), labels=np.arange(N_CLASSES)).astype(np.int64)


def largest_predicted_share(predicted: np.ndarray) -> float:
    """Share of the rows given the most frequent predicted class (1.0 = a single class for every row);
    NaN for no rows."""
    predicted = np.asarray(predicted)
    if predicted.size == 0:
        return float("nan")
    return float(np.bincount(predicted).max() / predicted.size)
