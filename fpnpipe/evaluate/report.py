"""Assemble the classification part of reports/metrics.json (DESIGN.md keys) and make it JSON-safe."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fpnpipe.evaluate.bootstrap import KEYS, BootstrapCI
from fpnpipe.evaluate.metrics import accuracy, auroc_table, balanced_accuracy, check_predictions


def classification_metrics(labels: np.ndarray, probs: np.ndarray, ci: BootstrapCI) -> dict[str, Any]:
    """Nested dict with exactly the DESIGN.md classification keys.

    labels (N,) int, probs (N, C); `ci` from bootstrap_auroc_ci on the same rows. Returns
    {"auroc": {class..., "average"}, "auroc_ci95": {class...: [lo, hi], "average": [lo, hi]},
    "accuracy", "balanced_accuracy", "n_test"}. The key says ci95 whatever `ci.level` is, because the key is
    part of the public contract. Undefined values are NaN here; pass the result through nan_to_none before
    writing JSON.
    """
    labels, probs = check_predictions(labels, probs)
    return {
        "auroc": auroc_table(labels, probs),
        "auroc_ci95": {key: [ci.intervals[key][0], ci.intervals[key][1]] for key in KEYS},
        "accuracy": accuracy(labels, probs),
        "balanced_accuracy": balanced_accuracy(labels, probs),
        "n_test": int(labels.size),
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
