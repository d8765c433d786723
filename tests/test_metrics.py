"""Classification metrics, patient-level bootstrap CIs, metrics.json assembly and plot rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fpnpipe.classes import CLASSES
from fpnpipe.evaluate.bootstrap import (
    KEYS,
    bootstrap_auroc_ci,
    bootstrap_auroc_replicates,
    patient_multiplicities,
    weighted_auroc,
)
from fpnpipe.evaluate.metrics import (
    accuracy,
    auroc_one_vs_rest,
    auroc_table,
    balanced_accuracy,
    confusion,
)
from fpnpipe.evaluate.plots import confusion_rows, roc_curve_rows, roc_curve_tables
from fpnpipe.evaluate.report import classification_metrics, nan_to_none

C = len(CLASSES)


def _probs_from_scores(column: int, scores: list[float]) -> np.ndarray:
    """(N, C) probabilities whose `column` is `scores` and the rest share 1 - score equally."""
    s = np.asarray(scores, dtype=float)
    probs = np.repeat(((1 - s) / (C - 1))[:, None], C, axis=1)
    probs[:, column] = s
    return probs


def _separated_dataset(n_patients: int = 60, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every class present; each patient has 1-3 rows of one class; the true class gets high probability."""
    rng = np.random.default_rng(seed)
    labels, ids = [], []
    for p in range(n_patients):
        for _ in range(rng.integers(1, 4)):
            labels.append(p % C)
            ids.append(f"P{p:03d}")
    labels_arr = np.array(labels)
    logits = rng.normal(0.0, 1.0, size=(labels_arr.size, C))
    logits[np.arange(labels_arr.size), labels_arr] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels_arr, probs, np.array(ids)


# --- AUROC -------------------------------------------------------------------------------------------------


def test_auroc_hand_computed_with_tie() -> None:
    # positives (class 0) score 0.8, 0.5, 0.3; negatives 0.5, 0.2.
    # pairs: 0.8>0.5, 0.8>0.2, 0.5=0.5 (1/2), 0.5>0.2, 0.3<0.5, 0.3>0.2 -> 4.5 / 6 = 0.75
    labels = np.array([0, 0, 0, 1, 1])
    scores = [0.8, 0.5, 0.3, 0.5, 0.2]
    probs = _probs_from_scores(0, scores)
    assert auroc_one_vs_rest(labels, probs)[0] == pytest.approx(0.75)
    assert float(weighted_auroc(np.array(scores), labels == 0, np.ones(5))) == pytest.approx(0.75)


def test_weighted_auroc_integer_weights_repeat_rows() -> None:
    # Weight 2 on the positive scoring 0.3 = repeating it: positives 0.8, 0.5, 0.3, 0.3 vs negatives 0.5, 0.2.
    # numerator 4.5 + (0 + 1) = 5.5 over 4 * 2 = 8 pairs.
    scores = np.array([0.8, 0.5, 0.3, 0.5, 0.2])
    positive = np.array([True, True, True, False, False])
    weights = np.array([[1, 1, 2, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 1, 1]], dtype=float)
    got = weighted_auroc(scores, positive, weights)
    assert got[0] == pytest.approx(5.5 / 8)
    assert got[1] == pytest.approx(0.75)
    assert math.isnan(got[2])  # no positive weight left


def test_weighted_auroc_matches_sklearn_on_random_ties_and_weights() -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 12, size=200) / 11.0  # many ties
    positive = rng.random(200) < 0.3
    weights = rng.integers(0, 4, size=(5, 200)).astype(float)
    got = weighted_auroc(scores, positive, weights)
    for b in range(5):
        expected = roc_auc_score(positive, scores, sample_weight=weights[b])
        assert got[b] == pytest.approx(expected, abs=1e-12)


def test_average_is_mean_of_the_three_margin_classes() -> None:
    labels, probs, _ = _separated_dataset()
    table = auroc_table(labels, probs)
    direct = [roc_auc_score(labels == c, probs[:, c]) for c in range(3)]
    assert table["average"] == pytest.approx(sum(direct) / 3)
    assert table["negative"] == pytest.approx(roc_auc_score(labels == 3, probs[:, 3]))
    assert list(table) == [*CLASSES, "average"]


def test_missing_class_gives_nan_not_a_crash() -> None:
    labels = np.array([0, 0, 1, 1, 3])  # spiculated absent
    probs = np.full((5, C), 0.25)
    probs[:, 0] = [0.9, 0.8, 0.1, 0.2, 0.1]
    table = auroc_table(labels, probs)
    assert math.isnan(table["spiculated"])
    assert math.isnan(table["average"])
    assert table["circumscribed"] == pytest.approx(1.0)


def test_only_one_class_present_gives_nan() -> None:
    labels = np.zeros(4, dtype=int)
    probs = np.full((4, C), 0.25)
    assert np.all(np.isnan(auroc_one_vs_rest(labels, probs)))


def test_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="probs must have shape"):
        auroc_table(np.array([0, 1]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="labels must lie"):
        auroc_table(np.array([0, 4]), np.full((2, C), 0.25))


# --- accuracy, confusion ----------------------------------------------------------------------------------


def test_accuracy_balanced_accuracy_and_confusion_orientation() -> None:
    # true:      0  0  0  1  2  3
    # predicted: 0  0  1  1  0  3
    labels = np.array([0, 0, 0, 1, 2, 3])
    predicted = np.array([0, 0, 1, 1, 0, 3])
    probs = np.full((6, C), 0.1)
    probs[np.arange(6), predicted] = 0.7
    assert accuracy(labels, probs) == pytest.approx(4 / 6)
    # recalls: class 0 2/3, class 1 1, class 2 0, class 3 1 -> mean 2/3
    assert balanced_accuracy(labels, probs) == pytest.approx((2 / 3 + 1 + 0 + 1) / 4)
    cm = confusion(labels, probs)
    expected = np.zeros((C, C), dtype=int)
    expected[0, 0] = 2
    expected[0, 1] = 1  # row = true circumscribed, column = predicted indistinct
    expected[1, 1] = 1
    expected[2, 0] = 1
    expected[3, 3] = 1
    np.testing.assert_array_equal(cm, expected)


# --- bootstrap --------------------------------------------------------------------------------------------


def test_bootstrap_ci_contains_point_estimate_and_is_deterministic() -> None:
    labels, probs, ids = _separated_dataset()
    point = auroc_table(labels, probs)
    ci = bootstrap_auroc_ci(labels, probs, ids, n_boot=300, level=0.95, seed=3)
    for key in KEYS:
        lo, hi = ci.intervals[key]
        assert lo <= point[key] <= hi, key
        assert lo < hi, key
        assert ci.n_used[key] == 300
    again = bootstrap_auroc_ci(labels, probs, ids, n_boot=300, level=0.95, seed=3)
    assert again.intervals == ci.intervals
    other = bootstrap_auroc_ci(labels, probs, ids, n_boot=300, level=0.95, seed=4)
    assert other.intervals != ci.intervals


def test_bootstrap_narrower_level_gives_nested_interval() -> None:
    labels, probs, ids = _separated_dataset()
    wide = bootstrap_auroc_ci(labels, probs, ids, n_boot=200, level=0.95, seed=0)
    narrow = bootstrap_auroc_ci(labels, probs, ids, n_boot=200, level=0.5, seed=0)
    for key in KEYS:
        assert wide.intervals[key][0] <= narrow.intervals[key][0] <= narrow.intervals[key][1]
        assert narrow.intervals[key][1] <= wide.intervals[key][1]


def test_bootstrap_resamples_patients_not_rows() -> None:
    # Two patients, each with five identical class-0 rows and five identical class-1 rows.
    # Patient A: class-0 rows score 0.9, class-1 rows 0.1. Patient B: class-0 rows 0.2, class-1 rows 0.8.
    # Drawing patients (A, A) -> AUROC 1; (B, B) -> 0; (A, B) -> pairs (0.9>0.1, 0.9>0.8, 0.2>0.1, 0.2<0.8)
    # = 3/4. Row-level resampling would mix row counts and give other values (e.g. 5 A-rows and 7 B-rows).
    scores = [0.9] * 5 + [0.1] * 5 + [0.2] * 5 + [0.8] * 5
    labels = np.array(([0] * 5 + [1] * 5) * 2)
    ids = np.array(["A"] * 10 + ["B"] * 10)
    reps = bootstrap_auroc_replicates(labels, _probs_from_scores(0, scores), ids, n_boot=200, seed=0)
    values = set(np.round(reps[:, 0], 12).tolist())
    assert values == {0.0, 0.75, 1.0}


def test_patient_multiplicities_draw_whole_patients() -> None:
    ids = np.array(["b", "a", "b", "c", "b"])
    counts, row_patient = patient_multiplicities(ids, n_boot=50, seed=0)
    assert counts.shape == (50, 3)
    np.testing.assert_array_equal(counts.sum(axis=1), np.full(50, 3))  # P patients drawn per resample
    np.testing.assert_array_equal(row_patient, [1, 0, 1, 2, 1])  # sorted patient order a, b, c


def test_bootstrap_skips_degenerate_resamples_and_counts_them() -> None:
    # Class 0 lives in a single patient among 6: resamples that miss that patient (prob (5/6)^6 ~ 0.33) have
    # no class-0 row, so the class-0 AUROC and the average are skipped there; class 3 never appears at all.
    labels = np.array([0, 0, 1, 1, 2, 1, 2])
    ids = np.array(["p0", "p0", "p1", "p2", "p3", "p4", "p5"])
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(C), size=7)
    reps = bootstrap_auroc_replicates(labels, probs, ids, n_boot=400, seed=5)
    ci = bootstrap_auroc_ci(labels, probs, ids, n_boot=400, level=0.95, seed=5)
    counts, row_patient = patient_multiplicities(ids, 400, 5)
    p0 = counts[:, row_patient[0]]
    usable = (p0 > 0) & (p0 < 6)  # class 0 present, and not alone
    assert ci.n_used["circumscribed"] == int(usable.sum()) == int(np.isfinite(reps[:, 0]).sum())
    assert 0 < ci.n_used["circumscribed"] < 400
    assert ci.n_used["negative"] == 0
    assert all(math.isnan(v) for v in ci.intervals["negative"])


def test_bootstrap_replicate_matches_sklearn_on_the_materialised_resample() -> None:
    labels, probs, ids = _separated_dataset(n_patients=200, seed=2)
    reps = bootstrap_auroc_replicates(labels, probs, ids, n_boot=1000, seed=9)
    # Resample 0 done the slow, direct way: repeat rows by patient multiplicity and call sklearn.
    counts, row_patient = patient_multiplicities(ids, 1000, 9)
    repeat = counts[0, row_patient]
    rl, rp = np.repeat(labels, repeat), np.repeat(probs, repeat, axis=0)
    for c in range(C):
        assert reps[0, c] == pytest.approx(roc_auc_score(rl == c, rp[:, c]), abs=1e-12)


# --- report assembly and JSON ------------------------------------------------------------------------------


def test_classification_metrics_has_exactly_the_design_keys_and_is_json_safe() -> None:
    labels = np.array([0, 0, 1, 1, 3, 3])  # spiculated absent -> its AUROC, the average and CIs are None
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(C), size=6)
    ids = np.array(["a", "a", "b", "c", "d", "e"])
    ci = bootstrap_auroc_ci(labels, probs, ids, n_boot=50, seed=0)
    metrics = nan_to_none(classification_metrics(labels, probs, ci))
    assert set(metrics) == {"auroc", "auroc_ci95", "accuracy", "balanced_accuracy", "n_test"}
    assert list(metrics["auroc"]) == [*CLASSES, "average"]
    assert list(metrics["auroc_ci95"]) == [*CLASSES, "average"]
    assert metrics["auroc"]["spiculated"] is None and metrics["auroc"]["average"] is None
    assert metrics["auroc_ci95"]["spiculated"] == [None, None]
    assert len(metrics["auroc_ci95"]["circumscribed"]) == 2
    assert metrics["n_test"] == 6
    json.dumps(metrics, allow_nan=False)  # raises if a NaN slipped through


def test_nan_to_none_recurses_and_converts_numpy() -> None:
    obj = {"a": float("nan"), "b": [1.0, np.float64("inf"), (np.nan, 2)], "c": np.array([np.nan, 0.5]),
           "d": {"e": np.int64(3)}}
    assert nan_to_none(obj) == {"a": None, "b": [1.0, None, [None, 2]], "c": [None, 0.5], "d": {"e": 3}}
    assert type(nan_to_none(obj)["d"]["e"]) is int


# --- plot rows --------------------------------------------------------------------------------------------


def test_roc_tables_and_confusion_rows() -> None:
    labels = np.array([0, 0, 1, 1])  # classes 2 and 3 absent -> empty curves
    probs = _probs_from_scores(0, [0.9, 0.4, 0.6, 0.1])
    tables = roc_curve_tables(labels, probs)
    assert list(tables) == list(CLASSES)
    assert tables["spiculated"] == [] and tables["negative"] == []
    circ = tables["circumscribed"]
    assert circ[0] == {"fpr": 0.0, "tpr": 0.0} and circ[-1] == {"fpr": 1.0, "tpr": 1.0}
    # area under the points (trapezoid) equals the AUROC: pairs 0.9>0.6, 0.9>0.1, 0.4<0.6, 0.4>0.1 -> 3/4
    fpr = np.array([p["fpr"] for p in circ])
    tpr = np.array([p["tpr"] for p in circ])
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
    rows = roc_curve_rows(labels, probs)
    assert {r["class"] for r in rows} == {"circumscribed", "indistinct"}
    assert len(rows) == len(circ) + len(tables["indistinct"])
    conf = confusion_rows(labels, probs)
    # predicted = arg-max: 0.9 -> circ; 0.4 -> others share 0.2 each, circ wins; 0.6 -> circ; 0.1 -> indistinct
    # (the three others tie at 0.3 and the tie goes to the lowest index, indistinct).
    assert conf == [
        {"actual": "circumscribed", "predicted": "circumscribed"},
        {"actual": "circumscribed", "predicted": "circumscribed"},
        {"actual": "indistinct", "predicted": "circumscribed"},
        {"actual": "indistinct", "predicted": "indistinct"},
    ]
