"""Patient-level bootstrap confidence intervals for the per-class and average AUROCs.

A resample draws P patients with replacement out of the P test patients and keeps all rows of each drawn
patient, as often as it was drawn. Rather than materialising resampled arrays, each resample is a weight
vector over the N rows (the multiplicity of the row's patient), and the AUROC is computed on weighted rows
by the Mann-Whitney rank statistic with ties counted one half, which equals the AUROC of the resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpnpipe.classes import CLASSES
from fpnpipe.evaluate.metrics import AVERAGE, N_CLASSES, check_predictions, margin_average

KEYS: tuple[str, ...] = (*CLASSES, AVERAGE)
"""Column order of the replicate table: the classes, then the margin average."""

_CHUNK = 256
"""Resamples whose row weights are held in memory at once: bounds memory at about _CHUNK * N floats."""


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile intervals per key of KEYS.

    intervals: {key: (lo, hi)}, NaN bounds where no resample was usable; n_used: {key: number of resamples
    where that AUROC was defined (the others are skipped)}; n_boot: resamples drawn; level: coverage.
    """

    intervals: dict[str, tuple[float, float]]
    n_used: dict[str, int]
    n_boot: int
    level: float


def weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of weighted rows, one value per weight vector.

    scores (N,) float, positive (N,) bool, weights (B, N) or (N,) non-negative -> (B,) or scalar array.
    AUROC = sum over (positive i, negative j) of w_i w_j [s_i > s_j] + 0.5 w_i w_j [s_i == s_j], divided by
    (total positive weight) * (total negative weight) (Mann-Whitney U with ties counted one half; with integer
    weights this is the AUROC of the data set repeating each row w times). NaN where either total is 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # One group per distinct score value, in increasing order.
    group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[..., order]
    pos = positive[order]
    pos_w = np.add.reduceat(w * pos, group_starts, axis=-1)  # (B, U) positive weight per score value
    neg_w = np.add.reduceat(w * ~pos, group_starts, axis=-1)  # (B, U) negative weight per score value
    neg_below = np.cumsum(neg_w, axis=-1) - neg_w  # negative weight strictly below each score value
    numerator = np.sum(pos_w * (neg_below + 0.5 * neg_w), axis=-1)
    denominator = pos_w.sum(axis=-1) * neg_w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def patient_multiplicities(patient_ids: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the patient-level resamples.

    patient_ids (N,) str -> (counts (B, P) int64: how often resample b drew patient p; each row sums to P,
    row_patient (N,) int64: the patient index p of each row). Deterministic for a given seed.
    """
    _, row_patient = np.unique(np.asarray(patient_ids).astype(str), return_inverse=True)
    n_patients = int(row_patient.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_patients, size=(n_boot, n_patients))
    flat = (draws + n_patients * np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_patients).reshape(n_boot, n_patients)
    return counts.astype(np.int64), row_patient.astype(np.int64).ravel()


def bootstrap_auroc_replicates(
    labels: np.ndarray, probs: np.ndarray, patient_ids: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """(B, C + 1) AUROC of every patient-level resample: columns in KEYS order (classes, then average).

    labels (N,) int, probs (N, C), patient_ids (N,) str. NaN where the resample leaves that class degenerate
    (absent or alone); the average is NaN where any margin class is.
    """
    labels, probs = check_predictions(labels, probs)
    patient_ids = np.asarray(patient_ids)
    if patient_ids.shape != labels.shape:
        raise ValueError(f"patient_ids must have shape {labels.shape}, got {patient_ids.shape}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    counts, row_patient = patient_multiplicities(patient_ids, n_boot, seed)
    out = np.full((n_boot, N_CLASSES + 1), np.nan)
    for start in range(0, n_boot, _CHUNK):
        weights = counts[start : start + _CHUNK][:, row_patient].astype(np.float64)  # (b, N)
        for c in range(N_CLASSES):
            out[start : start + _CHUNK, c] = weighted_auroc(probs[:, c], labels == c, weights)
    out[:, N_CLASSES] = margin_average(out[:, :N_CLASSES])
    return out


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Central percentile interval of the finite entries of values (B,); (NaN, NaN) if there are none."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def bootstrap_auroc_ci(
    labels: np.ndarray,
    probs: np.ndarray,
    patient_ids: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Patient-level percentile bootstrap intervals for each class's AUROC and the margin average.

    labels (N,) int, probs (N, C), patient_ids (N,) str. Resamples where a key's AUROC is undefined are
    skipped for that key only (so an absent negative class does not cost the margin classes anything);
    `n_used` reports how many were kept per key.
    """
    replicates = bootstrap_auroc_replicates(labels, probs, patient_ids, n_boot, seed)
    intervals = {key: percentile_interval(replicates[:, k], level) for k, key in enumerate(KEYS)}
    n_used = {key: int(np.isfinite(replicates[:, k]).sum()) for k, key in enumerate(KEYS)}
    return BootstrapCI(intervals=intervals, n_used=n_used, n_boot=n_boot, level=level)
