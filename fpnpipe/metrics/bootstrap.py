"""Patient-level bootstrap confidence intervals for AUROCs (margin classes and their average, detection).

A resample draws P patients with replacement out of the P patients that have rows in the population (e.g.
the lesion crops for the margin AUROCs) and keeps all rows of each drawn patient, as often as it was drawn.
Rather than materialising resampled arrays, each resample is a weight vector over the rows (the multiplicity
of the row's patient), and the AUROC is computed on weighted rows by the Mann-Whitney rank statistic with
ties counted one half, which equals the AUROC of the resample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fpnpipe.metrics.classification import AurocTask, task_auroc

_CHUNK = 256
"""Resamples whose row weights are held in memory at once: bounds memory at about _CHUNK * N floats."""


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile intervals per key.

    intervals: {key: (lo, hi)}, NaN bounds where no resample was usable; n_used: {key: number of resamples
    where that AUROC was defined (the others are skipped)}; n_boot: resamples drawn; level: coverage;
    n_patients: patients resampled.
    """

    intervals: dict[str, tuple[float, float]]
    n_used: dict[str, int]
    n_boot: int
    level: float
    n_patients: int


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
    n_patients = int(row_patient.max()) + 1 if row_patient.size else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, max(n_patients, 1), size=(n_boot, n_patients))
    flat = (draws + n_patients * np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_patients).reshape(n_boot, n_patients)
    return counts.astype(np.int64), row_patient.astype(np.int64).ravel()


def bootstrap_replicates(
    tasks: Sequence[AurocTask], patient_ids: np.ndarray, n_boot: int, seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, int]:
    """(B, T) AUROC of every task in every patient-level resample, and the number of patients resampled.

    The patients resampled are those with at least one row included in some task; each resample weights a
    row by its patient's multiplicity (0 for rows a task does not include). NaN where a resample leaves a
    task without positives or negatives. progress(done, n_boot) is called after each chunk of resamples.
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    patient_ids = np.asarray(patient_ids)
    if not tasks:
        return np.zeros((n_boot, 0)), 0
    n = tasks[0].scores.shape[0]
    if patient_ids.shape != (n,) or any(t.scores.shape != (n,) for t in tasks):
        raise ValueError(f"patient_ids and every task must have {n} rows, got {patient_ids.shape}")
    rows = np.flatnonzero(np.logical_or.reduce([t.included for t in tasks]))
    out = np.full((n_boot, len(tasks)), np.nan)
    if rows.size == 0:
        return out, 0
    counts, row_patient = patient_multiplicities(patient_ids[rows], n_boot, seed)
    for start in range(0, n_boot, _CHUNK):
        weights = counts[start : start + _CHUNK][:, row_patient].astype(np.float64)  # (b, R)
        for k, task in enumerate(tasks):
            included = task.included[rows].astype(np.float64)
            out[start : start + _CHUNK, k] = weighted_auroc(task.scores[rows], task.positive[rows], weights * included)
        if progress is not None:
            progress(min(start + _CHUNK, n_boot), n_boot)
    return out, counts.shape[1]


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


def bootstrap_ci(
    tasks: Mapping[str, AurocTask],
    patient_ids: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    average_key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BootstrapCI:
    """Patient-level percentile bootstrap intervals for each named task's AUROC, plus, under `average_key`,
    the mean of all the tasks' AUROCs in each resample (the margin average).

    Resamples where a key's AUROC is undefined are skipped for that key only; `n_used` reports how many
    were kept per key (the average needs every task defined).
    """
    names = list(tasks)
    replicates, n_patients = bootstrap_replicates([tasks[k] for k in names], patient_ids, n_boot, seed, progress)
    columns = {name: replicates[:, k] for k, name in enumerate(names)}
    if average_key is not None:
        columns[average_key] = replicates.mean(axis=1) if names else np.full(n_boot, np.nan)
    return BootstrapCI(
        intervals={key: percentile_interval(values, level) for key, values in columns.items()},
        n_used={key: int(np.isfinite(values).sum()) for key, values in columns.items()},
        n_boot=n_boot,
        level=level,
        n_patients=n_patients,
    )


@dataclass(frozen=True)
class PairedDifference:
    """Mean AUROC of tasks A minus mean AUROC of tasks B on the same rows.

    point: the difference on the data; interval: its percentile interval over patient-level resamples that
    weight both models' rows alike (a paired bootstrap); n_used: resamples where both means were defined."""

    point: float
    interval: tuple[float, float]
    n_used: int


def paired_mean_auroc_difference(
    tasks_a: Sequence[AurocTask], tasks_b: Sequence[AurocTask], patient_ids: np.ndarray, n_boot: int = 1000,
    level: float = 0.95, seed: int = 0,
) -> PairedDifference:
    """Paired patient-level bootstrap of mean AUROC(tasks_a) - mean AUROC(tasks_b), e.g. the margin average
    of a baseline minus FPN-IAIA-BL's, both models' scores given for the same N rows.

    Both models' AUROCs are computed in each resample from the same patient multiplicities (one call of
    bootstrap_replicates over the tasks of both), so the patients' shared difficulty cancels out of the
    difference instead of widening its interval. With the same rows and seed, each model's own replicates
    equal those of its bootstrap_ci."""
    if not tasks_a or len(tasks_a) != len(tasks_b):
        raise ValueError(f"need the same positive number of tasks for both models, got {len(tasks_a)} and "
                         f"{len(tasks_b)}")
    k = len(tasks_a)
    replicates, _ = bootstrap_replicates([*tasks_a, *tasks_b], patient_ids, n_boot, seed)
    differences = replicates[:, :k].mean(axis=1) - replicates[:, k:].mean(axis=1)
    point = np.mean([task_auroc(t) for t in tasks_a]) - np.mean([task_auroc(t) for t in tasks_b])
    return PairedDifference(float(point), percentile_interval(differences, level),
                            int(np.isfinite(differences).sum()))
