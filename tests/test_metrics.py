"""Classification metrics, patient-level bootstrap CIs, metrics.json assembly and plot rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fpnpipe.classes import CLASSES, MARGIN_CLASSES
from fpnpipe.evaluate.plots import confusion_rows, roc_curve_tables
from fpnpipe.evaluate.predictions import Predictions, predictions_csv, read_predictions
from fpnpipe.evaluate.report import classification_metrics, nan_to_none
from fpnpipe.metrics.bootstrap import bootstrap_ci, bootstrap_replicates, patient_multiplicities, weighted_auroc
from fpnpipe.metrics.classification import (
    accuracy,
    all_crops_auroc_table,
    auroc_one_vs_rest,
    balanced_accuracy,
    confusion,
    detection_auroc,
    largest_predicted_share,
    margin_accuracy,
    margin_auroc_table,
    margin_balanced_accuracy,
    margin_probabilities,
    margin_tasks,
)
from fpnpipe.metrics.warnings import metric_warnings

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


def _lesion_rows(labels: np.ndarray) -> np.ndarray:
    return labels != CLASSES.index("negative")


def test_margin_auroc_is_sklearn_among_lesions_on_renormalised_probabilities() -> None:
    labels, probs, _ = _separated_dataset()
    table = margin_auroc_table(labels, probs)
    lesion = _lesion_rows(labels)
    renorm = probs[lesion][:, :3] / probs[lesion][:, :3].sum(axis=1, keepdims=True)
    direct = [roc_auc_score(labels[lesion] == c, renorm[:, c]) for c in range(3)]
    assert [table[c] for c in MARGIN_CLASSES] == pytest.approx(direct, abs=1e-12)
    assert table["average"] == pytest.approx(sum(direct) / 3)
    assert list(table) == [*MARGIN_CLASSES, "average"]


def test_margin_auroc_ignores_negatives_and_how_sure_the_model_is_of_them() -> None:
    # Scaling p(negative) up or down (and renormalising) changes no margin AUROC: only the ratios of the
    # margin probabilities matter, and negative patches are not in the population at all.
    labels, probs, _ = _separated_dataset(seed=4)
    shifted = probs.copy()
    shifted[:, 3] *= 25.0
    shifted /= shifted.sum(axis=1, keepdims=True)
    assert margin_auroc_table(labels, shifted) == pytest.approx(margin_auroc_table(labels, probs))
    lesion = _lesion_rows(labels)
    assert margin_auroc_table(labels[lesion], probs[lesion]) == pytest.approx(margin_auroc_table(labels, probs))


def test_a_model_that_only_detects_lesions_scores_chance_on_margins() -> None:
    # The failure this metric exists to expose: margin probabilities are noise, p(negative) is perfect.
    # The all-crops figure (the old `auroc.average`) looks excellent; the margin AUROC sits near 0.5.
    rng = np.random.default_rng(0)
    labels = np.r_[np.repeat([0, 1, 2], 200), np.full(600, 3)]
    margins = rng.dirichlet(np.ones(3), size=labels.size)
    p_neg = np.where(labels == 3, 0.9, 0.1)
    probs = np.c_[margins * (1 - p_neg)[:, None], p_neg]
    assert all_crops_auroc_table(labels, probs)["average"] > 0.7
    assert detection_auroc(labels, probs) == pytest.approx(1.0)
    assert abs(margin_auroc_table(labels, probs)["average"] - 0.5) < 0.05


def test_constant_predictor_and_shuffled_labels_are_chance() -> None:
    labels, probs, _ = _separated_dataset(n_patients=400, seed=3)
    constant = np.tile([0.1, 0.2, 0.3, 0.4], (labels.size, 1))
    assert margin_auroc_table(labels, constant) == {**dict.fromkeys(MARGIN_CLASSES, 0.5), "average": 0.5}
    assert detection_auroc(labels, constant) == 0.5
    shuffled = np.random.default_rng(1).permutation(labels)
    assert abs(margin_auroc_table(shuffled, probs)["average"] - 0.5) < 0.06
    assert margin_auroc_table(labels, probs)["average"] > 0.8


def test_everything_predicted_negative_is_caught() -> None:
    labels, _, ids = _separated_dataset()
    probs = np.tile([0.05, 0.05, 0.05, 0.85], (labels.size, 1))
    probs[:, 0] += np.linspace(0, 0.01, labels.size)  # not constant, still always "negative"
    assert balanced_accuracy(labels, probs) == pytest.approx(0.25)
    metrics = nan_to_none(classification_metrics(labels, probs, ids, n_boot=100, level=0.95, seed=0))
    assert metrics["predicted_share"]["negative"] == 1.0
    warnings = metric_warnings(metrics)
    assert any("'negative' for 100% of the test crops" in w for w in warnings)


def test_detection_auroc_is_lesion_vs_negative_on_one_minus_p_negative() -> None:
    labels, probs, _ = _separated_dataset(seed=5)
    expected = roc_auc_score(labels != 3, 1 - probs[:, 3])
    assert detection_auroc(labels, probs) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(detection_auroc(labels[labels != 3], probs[labels != 3]))


def test_margin_probabilities_renormalise_and_handle_a_zero_row() -> None:
    probs = np.array([[0.2, 0.1, 0.1, 0.6], [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(margin_probabilities(probs), [[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])


def test_all_crops_table_is_sklearn_one_vs_rest_over_every_row() -> None:
    labels, probs, _ = _separated_dataset()
    table = all_crops_auroc_table(labels, probs)
    direct = [roc_auc_score(labels == c, probs[:, c]) for c in range(C)]
    assert [table[c] for c in CLASSES] == pytest.approx(direct)
    assert table["average"] == pytest.approx(sum(direct[:3]) / 3)


def test_missing_class_gives_nan_not_a_crash() -> None:
    labels = np.array([0, 0, 1, 1, 3])  # spiculated absent
    probs = np.full((5, C), 0.25)
    probs[:, 0] = [0.9, 0.8, 0.1, 0.2, 0.1]
    table = margin_auroc_table(labels, probs)
    assert math.isnan(table["spiculated"])
    assert math.isnan(table["average"])
    assert table["circumscribed"] == pytest.approx(1.0)


def test_only_one_class_present_gives_nan() -> None:
    labels = np.zeros(4, dtype=int)
    probs = np.full((4, C), 0.25)
    assert np.all(np.isnan(auroc_one_vs_rest(labels, probs)))


def test_bad_shapes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="probs must have shape"):
        margin_auroc_table(np.array([0, 1]), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="labels must lie"):
        margin_auroc_table(np.array([0, 4]), np.full((2, C), 0.25))


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


def test_margin_accuracies_take_the_best_margin_even_when_negative_wins() -> None:
    # Lesions only count, and the arg-max runs over the three margin probabilities:
    # row 0 (circ): margins 0.2 / 0.1 / 0.0 -> circ (right, although "negative" has 0.7)
    # row 1 (ind): 0.1 / 0.3 / 0.5 -> spic (wrong); row 2 (spic): 0.0 / 0.1 / 0.8 -> spic (right)
    labels = np.array([0, 1, 2, 3])
    probs = np.array([[0.2, 0.1, 0.0, 0.7], [0.1, 0.3, 0.5, 0.1], [0.0, 0.1, 0.8, 0.1], [0.5, 0.2, 0.2, 0.1]])
    assert margin_accuracy(labels, probs) == pytest.approx(2 / 3)
    assert margin_balanced_accuracy(labels, probs) == pytest.approx((1 + 0 + 1) / 3)
    assert largest_predicted_share(np.array([3, 3, 1, 3])) == 0.75


# --- bootstrap --------------------------------------------------------------------------------------------


def _margin_ci(labels, probs, ids, n_boot, level=0.95, seed=0):
    return bootstrap_ci(margin_tasks(labels, probs), ids, n_boot, level, seed, average_key="average")


def test_bootstrap_ci_contains_point_estimate_and_is_deterministic() -> None:
    labels, probs, ids = _separated_dataset()
    point = margin_auroc_table(labels, probs)
    ci = _margin_ci(labels, probs, ids, n_boot=300, seed=3)
    for key in (*MARGIN_CLASSES, "average"):
        lo, hi = ci.intervals[key]
        assert lo <= point[key] <= hi, key
        assert lo < hi, key
        assert ci.n_used[key] == 300
    # only the patients with lesion rows are resampled
    assert ci.n_patients == len(set(ids[labels != 3]))
    assert _margin_ci(labels, probs, ids, n_boot=300, seed=3).intervals == ci.intervals
    assert _margin_ci(labels, probs, ids, n_boot=300, seed=4).intervals != ci.intervals


def test_bootstrap_narrower_level_gives_nested_interval() -> None:
    labels, probs, ids = _separated_dataset()
    wide = _margin_ci(labels, probs, ids, n_boot=200, level=0.95)
    narrow = _margin_ci(labels, probs, ids, n_boot=200, level=0.5)
    for key in (*MARGIN_CLASSES, "average"):
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
    tasks = margin_tasks(labels, _probs_from_scores(0, scores))
    reps, n_patients = bootstrap_replicates([tasks["circumscribed"]], ids, n_boot=200, seed=0)
    assert n_patients == 2
    assert set(np.round(reps[:, 0], 12).tolist()) == {0.0, 0.75, 1.0}


def test_patient_multiplicities_draw_whole_patients() -> None:
    ids = np.array(["b", "a", "b", "c", "b"])
    counts, row_patient = patient_multiplicities(ids, n_boot=50, seed=0)
    assert counts.shape == (50, 3)
    np.testing.assert_array_equal(counts.sum(axis=1), np.full(50, 3))  # P patients drawn per resample
    np.testing.assert_array_equal(row_patient, [1, 0, 1, 2, 1])  # sorted patient order a, b, c


def test_bootstrap_skips_degenerate_resamples_and_counts_them() -> None:
    # Class 0 lives in a single patient among 6: resamples that miss that patient (prob (5/6)^6 ~ 0.33) have
    # no class-0 row, so the class-0 AUROC and the average are skipped there.
    labels = np.array([0, 0, 1, 1, 2, 1, 2])
    ids = np.array(["p0", "p0", "p1", "p2", "p3", "p4", "p5"])
    probs = np.random.default_rng(0).dirichlet(np.ones(C), size=7)
    ci = _margin_ci(labels, probs, ids, n_boot=400, seed=5)
    counts, row_patient = patient_multiplicities(ids, 400, 5)
    p0 = counts[:, row_patient[0]]
    usable = (p0 > 0) & (p0 < 6)  # class 0 present, and not alone
    assert ci.n_used["circumscribed"] == int(usable.sum())
    assert 0 < ci.n_used["circumscribed"] < 400
    assert ci.n_used["average"] <= ci.n_used["circumscribed"]


def test_bootstrap_replicate_matches_sklearn_on_the_materialised_resample() -> None:
    labels, probs, ids = _separated_dataset(n_patients=200, seed=2)
    lesion = labels != 3
    tasks = margin_tasks(labels, probs)
    reps, _ = bootstrap_replicates(list(tasks.values()), ids, n_boot=50, seed=9)
    # Resample 0 done the slow, direct way: repeat lesion rows by patient multiplicity and call sklearn.
    counts, row_patient = patient_multiplicities(ids[lesion], 50, 9)
    repeat = counts[0, row_patient]
    rl = np.repeat(labels[lesion], repeat)
    rp = np.repeat(margin_probabilities(probs[lesion]), repeat, axis=0)
    for c in range(3):
        assert reps[0, c] == pytest.approx(roc_auc_score(rl == c, rp[:, c]), abs=1e-12)


# --- report assembly, warnings and JSON ---------------------------------------------------------------------


def test_classification_metrics_has_exactly_the_design_keys_and_is_json_safe() -> None:
    labels = np.array([0, 0, 1, 1, 3, 3])  # spiculated absent -> its AUROC, the average and CIs are None
    probs = np.random.default_rng(0).dirichlet(np.ones(C), size=6)
    ids = np.array(["a", "a", "b", "c", "d", "e"])
    metrics = nan_to_none(classification_metrics(labels, probs, ids, n_boot=50, level=0.95, seed=0))
    assert set(metrics) == {
        "auroc", "auroc_ci95", "detection", "auroc_all_crops", "accuracy", "balanced_accuracy", "margin_accuracy",
        "margin_balanced_accuracy", "predicted_share", "margin_predicted_share", "n_test", "n_test_lesions",
        "n_test_by_class", "n_test_lesion_patients",
    }
    assert list(metrics["auroc"]) == [*MARGIN_CLASSES, "average"]
    assert list(metrics["auroc_ci95"]) == [*MARGIN_CLASSES, "average"]
    assert metrics["auroc"]["spiculated"] is None and metrics["auroc"]["average"] is None
    assert metrics["auroc_ci95"]["spiculated"] == {"lo": None, "hi": None}
    assert set(metrics["detection"]) == {"auroc", "auroc_ci95"}
    assert list(metrics["auroc_all_crops"]) == [*CLASSES, "average"]
    assert (metrics["n_test"], metrics["n_test_lesions"], metrics["n_test_lesion_patients"]) == (6, 4, 3)
    assert any("undefined" in w for w in metric_warnings(metrics))
    json.dumps(metrics, allow_nan=False)  # raises if a NaN slipped through


def test_warnings_for_chance_level_intervals_and_small_classes() -> None:
    quiet = {"predicted_share": {"circumscribed": 0.3, "negative": 0.4}, "margin_predicted_share": {"indistinct": 0.5},
             "auroc": {"average": 0.9}, "auroc_ci95": {"average": {"lo": 0.85, "hi": 0.95}},
             "n_test_by_class": {"circumscribed": 30, "indistinct": 30, "spiculated": 30}}
    assert metric_warnings(quiet) == []
    loud = {**quiet, "auroc": {"average": 0.6}, "auroc_ci95": {"average": {"lo": 0.42, "hi": 0.75}},
            "n_test_by_class": {"circumscribed": 30, "indistinct": 4, "spiculated": 30}}
    text = " ".join(metric_warnings(loud))
    assert "not distinguishable from chance" in text and "indistinct (4)" in text


def test_nan_to_none_recurses_and_converts_numpy() -> None:
    obj = {"a": float("nan"), "b": [1.0, np.float64("inf"), (np.nan, 2)], "c": np.array([np.nan, 0.5]),
           "d": {"e": np.int64(3)}}
    assert nan_to_none(obj) == {"a": None, "b": [1.0, None, [None, 2]], "c": [None, 0.5], "d": {"e": 3}}
    assert type(nan_to_none(obj)["d"]["e"]) is int


def test_predictions_csv_round_trip_recomputes_every_classification_value(tmp_path) -> None:
    from sklearn.metrics import balanced_accuracy_score

    labels, probs, ids = _separated_dataset(seed=8)
    preds = Predictions(np.array([f"img{k}" for k in range(labels.size)], dtype=object), ids,
                        np.array(["test"] * labels.size, dtype=object), labels, probs)
    (tmp_path / "p.csv").write_text(predictions_csv(preds))
    back = read_predictions(tmp_path / "p.csv")
    np.testing.assert_array_equal(back.probs, probs)  # exact: shortest round-trip repr
    metrics = classification_metrics(back.labels, back.probs, back.patient_id, n_boot=100, level=0.95, seed=0)
    lesion = back.labels != 3
    renorm = back.probs[lesion][:, :3] / back.probs[lesion][:, :3].sum(1, keepdims=True)
    for c, name in enumerate(MARGIN_CLASSES):
        assert metrics["auroc"][name] == pytest.approx(roc_auc_score(back.labels[lesion] == c, renorm[:, c]))
    assert metrics["detection"]["auroc"] == pytest.approx(roc_auc_score(lesion, 1 - back.probs[:, 3]))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(back.labels, back.probs.argmax(1)))
    assert metrics["margin_balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(back.labels[lesion], renorm.argmax(1)))
    same = classification_metrics(labels, probs, ids, n_boot=100, level=0.95, seed=0)
    assert nan_to_none(same) == nan_to_none(metrics)


# --- plot rows --------------------------------------------------------------------------------------------


def test_roc_tables_and_confusion_rows() -> None:
    labels = np.array([0, 0, 1, 1, 3])  # spiculated absent -> empty curve
    probs = np.array([[0.6, 0.1, 0.1, 0.2], [0.2, 0.2, 0.1, 0.5], [0.3, 0.4, 0.1, 0.2], [0.05, 0.5, 0.05, 0.4],
                      [0.1, 0.1, 0.1, 0.7]])
    tables = roc_curve_tables(labels, probs)
    assert list(tables) == [*MARGIN_CLASSES, "detection"]
    assert tables["spiculated"] == []
    circ = tables["circumscribed"]
    assert circ[0] == {"fpr": 0.0, "tpr": 0.0} and circ[-1] == {"fpr": 1.0, "tpr": 1.0}
    # area under the points (trapezoid) equals the margin AUROC among the four lesions
    fpr = np.array([p["fpr"] for p in circ])
    tpr = np.array([p["tpr"] for p in circ])
    assert np.trapezoid(tpr, fpr) == pytest.approx(margin_auroc_table(labels, probs)["circumscribed"])
    conf = confusion_rows(labels, probs)
    assert [r["predicted"] for r in conf] == ["circumscribed", "negative", "indistinct", "indistinct", "negative"]
    assert [r["actual"] for r in conf] == ["circumscribed", "circumscribed", "indistinct", "indistinct", "negative"]
