"""Simple statistics of a crop's framing and intensity, and how well they alone tell lesion crops from
negative patches.

A lesion crop is a square box 1.6x the lesion, zero-padded where it passes the image border, and may hold
air outside the breast; its side follows the lesion's size. If negative patches differ in these respects,
a network can learn "lesion" from the framing instead of the tissue. `crop_statistics` measures what such
a shortcut could use, `negatives` draws patches whose statistics match the lesion crops', and
`shortcut_auroc` checks the result: a cross-validated logistic regression on the statistics, whose AUROC
is 0.5 when they carry no information about the class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from fpnpipe.data.schema import CropSet

DARK_LEVEL = 0.05
"""A pixel at or below this normalised intensity is dark: air, background or zero padding (images are
normalised to [0, 1] by their own 0.5 / 99.5 percentiles, so air lies at or near 0)."""

FEATURES: tuple[str, ...] = ("mean", "std", "dark_share", "edge_distance", "log_side")
"""Columns of `crop_statistics`: mean and standard deviation of the pixels; share of dark pixels; distance
from the crop centre to the nearest dark pixel as a share of the crop side, capped at 0.5 (0.5 = no air
or padding within half a side: the centre is deep in tissue); natural log of the crop box side in
source pixels."""

MATCHED: tuple[str, ...] = ("mean", "std", "dark_share", "edge_distance")
"""The columns negative patches are matched on (the side is copied from the lesion crop exactly)."""

SHORTCUT_FEATURES: tuple[str, ...] = ("mean", "std", "dark_share", "log_side")
"""The four statistics of issue 15's check: pixel mean and std, dark share, side."""

SHORTCUT_LIMIT = 0.65
"""Above this cross-validated AUROC, crop statistics alone tell lesions from negatives (issue 15's bound)."""

EDGE_CAP = 0.5
"""edge_distance's cap: no dark pixel within half a side of the centre."""


def edge_distance(image: np.ndarray) -> float:
    """Distance from the centre of an (S, S) crop to its nearest dark pixel, as a share of S, capped at 0.5."""
    dark = image <= DARK_LEVEL
    if not dark.any():
        return EDGE_CAP
    s = image.shape[0]
    distance = ndimage.distance_transform_edt(~dark)
    c = (s - 1) / 2
    # Bilinear read at the exact centre (between pixels for an even side).
    centre = ndimage.map_coordinates(distance, [[c], [c]], order=1)[0]
    return float(min(centre / s, EDGE_CAP))


def crop_statistics(images: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """(N, len(FEATURES)) float64 statistics of N crops: `images` (N, S, S) in [0, 1], `sides` (N,) the
    crop box sides in source pixels."""
    n = len(images)
    flat = images.reshape(n, -1).astype(np.float64)
    out = np.empty((n, len(FEATURES)))
    out[:, 0] = flat.mean(axis=1)
    out[:, 1] = flat.std(axis=1)
    out[:, 2] = (flat <= DARK_LEVEL).mean(axis=1)
    out[:, 3] = [edge_distance(im) for im in images]
    out[:, 4] = np.log(np.maximum(np.asarray(sides, np.float64), 1.0))
    return out


def box_sides(source_box: np.ndarray) -> np.ndarray:
    """(N,) sides of (N, 4) square [x0, y0, x1, y1] boxes."""
    return np.asarray(source_box[:, 2] - source_box[:, 0], np.float64)


def columns(stats: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The named columns of a `crop_statistics` array."""
    return stats[:, [FEATURES.index(name) for name in names]]


def shortcut_auroc(
    lesion_stats: np.ndarray,
    negative_stats: np.ndarray,
    groups: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """Cross-validated AUROC of a logistic regression (standardised inputs) telling lesion crops (positive)
    from negative patches by their statistics alone (rows of `crop_statistics`, any subset of columns).
    0.5 = the statistics carry no information about the class. `groups` (one per row, lesions first):
    folds keep a group (a patient) whole, so no patient is both trained on and scored. NaN when either
    class has fewer rows than `folds`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([lesion_stats, negative_stats])
    y = np.r_[np.ones(len(lesion_stats), int), np.zeros(len(negative_stats), int)]
    if min(len(lesion_stats), len(negative_stats)) < folds:
        return float("nan")
    model = make_pipeline(StandardScaler(), LogisticRegression())
    if groups is not None and len(np.unique(groups)) >= folds:
        cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        scores = cross_val_predict(model, x, y, cv=cv, groups=groups, method="predict_proba")[:, 1]
    else:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        scores = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def _median_table(stats: np.ndarray) -> dict[str, float | None]:
    return {name: round(float(np.median(stats[:, k])), 4) if len(stats) else None for k, name in enumerate(FEATURES)}


def framing_report(lesions: CropSet, negatives: CropSet, seed: int) -> dict[str, Any]:
    """How well simple crop statistics tell lesion crops from negative patches (every split pooled): the
    median of each statistic per class, and the cross-validated AUROC of a logistic regression on them
    (folds keep patients whole), on the four statistics of issue 15 and on all five. Chance is 0.5."""
    a = crop_statistics(lesions.images, box_sides(lesions.source_box))
    b = crop_statistics(negatives.images, box_sides(negatives.source_box))
    groups = np.concatenate([lesions.patient_id, negatives.patient_id]).astype(str)

    def auroc(names: tuple[str, ...]) -> float | None:
        value = shortcut_auroc(columns(a, names), columns(b, names), groups=groups, seed=seed)
        return None if math.isnan(value) else round(value, 4)

    scores = {"mean_std_dark_side": auroc(SHORTCUT_FEATURES), "all": auroc(FEATURES)}
    worst = max((v for v in scores.values() if v is not None), default=None)
    warning = None
    if worst is not None and worst > SHORTCUT_LIMIT:
        warning = (f"crop statistics alone tell lesion crops from negative patches with AUROC {worst:.3f} (above "
                   f"{SHORTCUT_LIMIT}; chance 0.5): a model can learn the class from framing or intensity; compare "
                   "the medians in reports/negatives.json, 'framing'")
    return {
        "median": {"lesion": _median_table(a), "negative": _median_table(b)},
        "shortcut_auroc": {"chance": 0.5, "limit": SHORTCUT_LIMIT, **scores},
        "warning": warning,
    }
