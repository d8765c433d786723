"""The evaluate stage on a tiny world: metrics.json holds the margin / detection / all-crops figures that
reports/predictions.csv recomputes with scikit-learn, activation precision comes with its chance level, and
the explain page shows the results and the warnings at the top."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from fpnpipe.classes import CLASSES, MARGIN_CLASSES, NEGATIVE_INDEX
from fpnpipe.data.crops import margin_band
from fpnpipe.data.schema import read_crops, write_crops
from fpnpipe.evaluate.predictions import read_predictions
from fpnpipe.evaluate.report import classification_metrics, nan_to_none
from tests.test_explain_stage import build_world


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate_world")
    build_world(root)
    # Give the lesion crops a fine annotation (the band around the bright disc) so activation precision runs.
    path = root / "data/processed/crops.h5"
    crops = read_crops(path)
    fine = np.stack([margin_band(img > 0.6, 2) for img in crops.images]).astype(np.uint8)
    lesion = crops.label != NEGATIVE_INDEX
    crops = type(crops)(**{**crops.__dict__, "fine": np.where(lesion[:, None, None], fine, 0).astype(np.uint8),
                           "has_fine": lesion.copy()})
    write_crops(path, crops)
    return root


@pytest.fixture
def world(in_tmp: Path, template: Path) -> Path:
    shutil.copytree(template, in_tmp, dirs_exist_ok=True)
    return in_tmp


def test_metrics_are_recomputed_from_predictions_csv(world: Path, run_stage) -> None:
    result = run_stage("evaluate", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    metrics = json.loads((world / "reports/metrics.json").read_text())
    pred = read_predictions(world / "reports/predictions.csv")
    crops = read_crops(world / "data/processed/crops.h5")
    assert len(pred.labels) == metrics["n_test"] == int((crops.split == "test").sum()) + int(
        (read_crops(world / "data/processed/negatives.h5").split == "test").sum())
    labels, probs = pred.labels, pred.probs
    lesion = labels != NEGATIVE_INDEX
    renorm = probs[lesion][:, :3] / probs[lesion][:, :3].sum(1, keepdims=True)
    margin = [roc_auc_score(labels[lesion] == c, renorm[:, c]) for c in range(3)]
    for c, name in enumerate(MARGIN_CLASSES):
        assert metrics["auroc"][name] == pytest.approx(margin[c])
    assert metrics["auroc"]["average"] == pytest.approx(np.mean(margin))
    assert metrics["detection"]["auroc"] == pytest.approx(roc_auc_score(lesion, 1 - probs[:, NEGATIVE_INDEX]))
    for c, name in enumerate(CLASSES):
        assert metrics["auroc_all_crops"][name] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
    assert metrics["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)))
    assert metrics["margin_accuracy"] == pytest.approx(np.mean(renorm.argmax(1) == labels[lesion]))
    assert metrics["margin_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels[lesion],
                                                                                        renorm.argmax(1)))
    assert metrics["n_test_lesions"] == int(lesion.sum())
    # The CIs follow from the same file with the library and the params' seed.
    again = nan_to_none(classification_metrics(labels, probs, pred.patient_id, 1000, 0.95, 0))
    assert again["auroc_ci95"] == metrics["auroc_ci95"] and again["detection"] == metrics["detection"]


def test_activation_precision_has_its_chance_level(world: Path, run_stage) -> None:
    assert run_stage("evaluate", "--params", "params.yaml").exit_code == 0
    precision = json.loads((world / "reports/metrics.json").read_text())["activation_precision"]
    crops = read_crops(world / "data/processed/crops.h5").in_split("test")
    annotated = crops.has_fine & (crops.label != NEGATIVE_INDEX)
    # one prototype per class and level, four levels: every annotated lesion crop counts four times
    assert precision["n_pairs"] == 4 * int(annotated.sum())
    assert precision["chance"]["average"] == pytest.approx(crops.fine[annotated].mean(axis=(1, 2)).mean())
    assert precision["lift"]["average"] == pytest.approx(precision["average"] / precision["chance"]["average"])
    for level in (2, 3, 4, 5):
        key = f"level_{level}"
        assert precision["lift"][key] == pytest.approx(precision[key] / precision["chance"][key])


def test_explain_page_shows_results_and_warnings(world: Path, run_stage) -> None:
    assert run_stage("evaluate", "--params", "params.yaml").exit_code == 0
    assert run_stage("explain", "--params", "params.yaml").exit_code == 0
    page = (world / "reports/explanations/index.html").read_text()
    document = json.loads((world / "reports/explanations/cases.json").read_text())
    assert "Test results" in page and "Detection AUROC" in page
    # an untrained tiny model with 3 test lesions per class: the interval includes chance, the classes are small
    assert document["warnings"], document["warnings"]
    for warning in document["warnings"]:
        assert warning.split(":")[0].replace("'", "&#x27;") in page


def _upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling (N, h, w) -> (N, size, size) with pixel centres aligned (align_corners=False),
    written out in numpy: output pixel o samples input coordinate (o + 0.5) * h / size - 0.5, clamped at 0.
    In float32, interpolating along columns first, as PyTorch does (evaluate uses it)."""

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * np.float32(n / size)
                         - np.float32(0.5), np.float32(0))
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n - 1), (src - lo).astype(np.float32)

    maps = maps.astype(np.float32)
    (r0, r1, wr), (c0, c1, wc) = axis(maps.shape[1]), axis(maps.shape[2])
    cols = maps[:, :, c0] * (1 - wc) + maps[:, :, c1] * wc  # (N, h, size)
    return (cols[:, r0, :] * (1 - wr)[:, None] + cols[:, r1, :] * wr[:, None]).astype(np.float64)


def test_activation_metrics_recomputed_from_the_saved_maps_with_numpy(world: Path, run_stage) -> None:
    assert run_stage("evaluate", "--params", "params.yaml").exit_code == 0
    metrics = json.loads((world / "reports/metrics.json").read_text())
    saved = np.load(world / "reports/activation_maps.npz")  # no pickle needed
    size, pct = int(saved["crop_size"]), float(saved["percentile"])
    crops = read_crops(world / "data/processed/crops.h5").in_split("test")
    # The crops are the test lesion crops, in test order; their masks are the crops file's.
    lesion = crops.label != NEGATIVE_INDEX
    assert saved["image_id"].tolist() == crops.image_id[lesion].tolist()
    np.testing.assert_array_equal(saved["fine"], crops.fine[lesion])
    precision: dict[int, list[float]] = {}
    area: dict[int, list[float]] = {}
    for level in (2, 3, 4, 5):
        maps, crop, proto = (saved[f"level_{level}_{k}"] for k in ("maps", "crop", "prototype"))
        assert (saved["prototype_class"][proto] == saved["label"][crop]).all()  # own-class pairs only
        up = _upsample(maps, size)
        flat = up.reshape(len(up), -1)
        kept = flat >= np.percentile(flat, pct, axis=1)[:, None]
        fine = saved["fine"][crop].reshape(len(up), -1).astype(bool)
        annotated = saved["has_fine"][crop]
        precision[level] = ((kept & fine).sum(1) / kept.sum(1))[annotated].tolist()
        scaled = (flat - flat.min(1, keepdims=True)) / (flat.max(1, keepdims=True) - flat.min(1, keepdims=True))
        area[level] = (scaled >= 0.5).mean(1).tolist()
    every = sum(precision.values(), [])
    # The upsampled maps agree to 5e-7; on 32 px crops whose coarse maps (2 x 2 cells) upsample to plateaus,
    # that moves pixels tied with the 95th percentile (by 1.6e-4 on the average with raw latent maps, 2.3e-3
    # with centred ones, whose 2 x 2 maps hold fewer distinct values): 5e-3 of slack, against averages of
    # 0.07-0.14 here, which another population or definition would move by far more.
    assert metrics["activation_precision"]["average"] == pytest.approx(np.mean(every), abs=5e-3)
    assert metrics["activation_area"]["average"] == pytest.approx(np.mean(sum(area.values(), [])), abs=1e-3)
    for level in (2, 3, 4, 5):
        assert metrics["activation_precision"][f"level_{level}"] == pytest.approx(np.mean(precision[level]), abs=5e-3)
    assert metrics["activation_precision"]["n_pairs"] == len(every)


def test_without_fine_annotations_area_is_reported_and_precision_says_why(world: Path, run_stage, caplog) -> None:
    path = world / "data/processed/crops.h5"
    crops = read_crops(path)
    write_crops(path, type(crops)(**{**crops.__dict__, "fine": np.zeros_like(crops.fine),
                                     "has_fine": np.zeros_like(crops.has_fine)}))
    with caplog.at_level("WARNING", logger="fpnpipe"):
        assert run_stage("evaluate", "--params", "params.yaml").exit_code == 0
    metrics = json.loads((world / "reports/metrics.json").read_text())
    n_lesions = metrics["n_test_lesions"]
    precision, area = metrics["activation_precision"], metrics["activation_area"]
    assert precision["n_annotated"] == 0 and precision["n_pairs"] == 0 and precision["average"] is None
    # one prototype per class and level: every test lesion crop counts once per level
    assert area["n_crops"] == n_lesions and area["n_pairs"] == 4 * n_lesions
    assert all(0 < area[f"level_{lv}"] <= 1 for lv in (2, 3, 4, 5))
    note = metrics["notes"]["activation_precision"]
    assert f"none of the {n_lesions} test lesion crops has a fine annotation" in note
    assert note in caplog.text
    saved = np.load(world / "reports/activation_maps.npz")
    assert not saved["has_fine"].any() and len(saved["level_2_maps"]) == n_lesions
