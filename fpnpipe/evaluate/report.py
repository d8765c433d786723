"""Assemble the classification part of reports/metrics.json (DESIGN.md keys) and make it JSON-safe."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fpnpipe.classes import CLASSES, MARGIN_CLASSES
from fpnpipe.log import ProgressCallback
from fpnpipe.metrics.bootstrap import BootstrapCI, bootstrap_ci
from fpnpipe.metrics.classification import (
    AVERAGE,
    accuracy,
    all_crops_auroc_table,
    balanced_accuracy,
    check_predictions,
    detection_auroc,
    detection_task,
    is_lesion,
    margin_accuracy,
    margin_auroc_table,
    margin_balanced_accuracy,
    margin_predictions,
    margin_tasks,
    predicted_labels,
)


def _interval(ci: BootstrapCI, key: str) -> dict[str, float]:
    lo, hi = ci.intervals[key]
    return {"lo": lo, "hi": hi}


def _shares(predicted: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """{class name: share of rows predicted as it} (NaN shares for no rows)."""
    counts = np.bincount(predicted, minlength=len(names))[: len(names)]
    total = counts.sum()
    return {name: float(c / total) if total else float("nan") for name, c in zip(names, counts, strict=True)}


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, patient_ids: np.ndarray, n_boot: int, level: float, seed: int,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Nested dict with the DESIGN.md classification keys of reports/metrics.json.

    labels (N,) int, probs (N, C), patient_ids (N,) str (for the patient-level bootstrap). Keys:
    `auroc` {margin classes, average}: margin AUROC among lesion crops, renormalised margin probabilities;
    `auroc_ci95` {same keys: {lo, hi}}: patient-level bootstrap over the patients with lesion crops;
    `detection` {auroc, auroc_ci95 {lo, hi}}: lesion vs negative, score 1 - p(negative);
    `auroc_all_crops` {classes, average}: one-vs-rest over every crop; `accuracy`, `balanced_accuracy` (four
    classes); `margin_accuracy`, `margin_balanced_accuracy` (lesions, arg-max over the margins);
    `predicted_share` {class: share of test crops predicted as it}, `margin_predicted_share` (among lesions);
    `n_test`, `n_test_lesions`, `n_test_by_class`, `n_test_lesion_patients`. CI keys say ci95 whatever
    `level` is, because the key is part of the public contract; bounds are scalars so that `dvc metrics
    diff` and `dvc exp show` show them. Undefined values are NaN here: pass the result through nan_to_none.
    progress(done, total): the bootstrap's resamples (margin, then detection).
    """
    labels, probs = check_predictions(labels, probs)
    patient_ids = np.asarray(patient_ids)
    def part(offset: int) -> Callable[[int, int], None] | None:
        return None if progress is None else lambda done, total: progress(offset + done, 2 * total)

    margin_ci = bootstrap_ci(margin_tasks(labels, probs), patient_ids, n_boot, level, seed, average_key=AVERAGE,
                             progress=part(0))
    detection_ci = bootstrap_ci({"detection": detection_task(labels, probs)}, patient_ids, n_boot, level, seed + 1,
                                progress=part(n_boot))
    _, margin_predicted = margin_predictions(labels, probs)
    lesions = is_lesion(labels)
    return {
        "auroc": margin_auroc_table(labels, probs),
        "auroc_ci95": {key: _interval(margin_ci, key) for key in (*MARGIN_CLASSES, AVERAGE)},
        "detection": {"auroc": detection_auroc(labels, probs), "auroc_ci95": _interval(detection_ci, "detection")},
        "auroc_all_crops": all_crops_auroc_table(labels, probs),
        "accuracy": accuracy(labels, probs),
        "balanced_accuracy": balanced_accuracy(labels, probs),
        "margin_accuracy": margin_accuracy(labels, probs),
        "margin_balanced_accuracy": margin_balanced_accuracy(labels, probs),
        "predicted_share": _shares(predicted_labels(probs), CLASSES),
        "margin_predicted_share": _shares(margin_predicted, MARGIN_CLASSES),
        "n_test": int(labels.size),
        "n_test_lesions": int(lesions.sum()),
        "n_test_by_class": {name: int((labels == c).sum()) for c, name in enumerate(CLASSES)},
        "n_test_lesion_patients": margin_ci.n_patients,
    }


def nan_to_none(obj: Any) -> Any:
    """Recursively convert to plain JSON types: NaN / inf -> None, numpy scalars and arrays -> Python.

    Mappings become dicts (keys as str), tuples / lists / arrays become lists; other values pass unchanged.
    """
    if isinstance(obj, Mapping):
        return {str(key): nan_to_none(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return nan_to_none(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(value) for value in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

