"""Negative patches (issue 15): as many per split as negatives.ratio asks, spread over the images, each matched
to a training lesion crop's side, framing and intensity statistics, so that simple crop statistics cannot tell
lesions from negatives on the phantoms, while the same check does tell them apart when nothing but the side
is matched."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fpnpipe.classes import NEGATIVE_INDEX
from fpnpipe.config import ConfigError, CropParams, NegativesParams, parse_params
from fpnpipe.data.crop_stats import (
    MATCHED,
    box_sides,
    columns,
    crop_statistics,
    edge_distance,
    framing_report,
    shortcut_auroc,
)
from fpnpipe.data.image_table import ImageEntry, read_image_table
from fpnpipe.data.negative_plan import NegativeSource, Template, plan_negatives, redeal
from fpnpipe.data.negatives import Sampling, breast_depth, draw_patch
from fpnpipe.data.schema import CropSet, read_crops
from tests.conftest import write_params

SIZE = 32
PHANTOMS = {"n_patients": 48, "image_shape": [320, 256], "lesion_radius_px": [8.0, 20.0]}


def _stage(*args: str) -> None:
    from stages.cli import build_app

    result = CliRunner().invoke(build_app(), list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small phantom set, preprocessed, with negatives drawn matched (negatives.h5) and side-only
    (unmatched.h5), in a module-wide working directory."""
    root = tmp_path_factory.mktemp("phantoms")
    old = Path.cwd()
    os.chdir(root)
    try:
        changes = {"synth": {**PHANTOMS, "out_dir": "raw"},
                   "data": {"raw_dir": "raw", "manifest": "raw/manifest.csv"},
                   "crop": {"size": SIZE}, "preprocess": {"jobs": 1},
                   "negatives": {"ratio": 1.0, "min_distance_px": 8.0, "skin_margin_px": 4}}
        write_params(root / "params.yaml", changes)
        write_params(root / "unmatched.yaml", {**changes, "negatives": {**changes["negatives"], "match": False}})
        _stage("synth", "--params", "params.yaml")
        _stage("preprocess", "--params", "params.yaml")
        _stage("negatives", "--params", "unmatched.yaml")
        shutil.move("data/processed/negatives.h5", "unmatched.h5")
        shutil.move("reports/negatives.json", "unmatched.json")
        _stage("negatives", "--params", "params.yaml")
        yield root
    finally:
        os.chdir(old)


def test_crop_statistics_cannot_tell_matched_negatives_from_lesions(phantoms: Path) -> None:
    lesions = read_crops(phantoms / "data/processed/crops.h5")
    matched = read_crops(phantoms / "data/processed/negatives.h5")
    unmatched = read_crops(phantoms / "unmatched.h5")
    # ratio 1: one patch per lesion crop, but for the odd large one that found no room in a 320 x 256 image
    assert len(lesions) >= 50 and 0.95 * len(lesions) <= len(matched) <= len(lesions)
    near = framing_report(lesions, matched, seed=0)["shortcut_auroc"]
    far = framing_report(lesions, unmatched, seed=0)["shortcut_auroc"]
    print("shortcut AUROC, matched:", near, "side only:", far)
    # Mean, std, dark share and side: chance is 0.5; 0.65 is issue 15's bound. The same classifier tells
    # lesions from side-only negatives (placed anywhere in the breast, holding air where lesions hold none).
    assert near["mean_std_dark_side"] < 0.65 and near["all"] < 0.65, near
    assert far["mean_std_dark_side"] > 0.65, far
    report = json.loads((phantoms / "reports/negatives.json").read_text())
    assert report["framing"]["shortcut_auroc"] == near and report["framing"]["warning"] is None
    assert "above 0.65" in json.loads((phantoms / "unmatched.json").read_text())["framing"]["warning"]


def test_negatives_keep_the_rules_of_lesion_crops(phantoms: Path) -> None:
    lesions = read_crops(phantoms / "data/processed/crops.h5")
    neg = read_crops(phantoms / "data/processed/negatives.h5")
    table = {e.image_id: e for e in read_image_table(phantoms / "data/processed/images.json")}
    assert (neg.label == NEGATIVE_INDEX).all() and neg.has_fine.all() and not neg.fine.any()
    made, wanted = Counter(neg.split.tolist()), Counter(lesions.split.tolist())  # round(1.0 x lesions) per split
    assert all(0.9 * wanted[s] <= made[s] <= wanted[s] for s in wanted), (made, wanted)
    train_sides = set(np.round(box_sides(lesions.in_split("train").source_box)).astype(int).tolist())
    assert set(np.round(box_sides(neg.source_box)).astype(int).tolist()) <= train_sides  # sides of train crops
    for k in range(len(neg)):
        entry = table[neg.image_id[k].split("#neg")[0]]
        assert neg.split[k] == entry.split
        x0, y0, x1, y1 = (float(v) for v in neg.source_box[k])
        h, w = entry.shape
        inside = max(0.0, min(x1, w) - max(x0, 0)) * max(0.0, min(y1, h) - max(y0, 0)) / ((x1 - x0) * (y1 - y0))
        assert inside >= CropParams().min_image_fraction
        for lx0, ly0, lx1, ly1 in entry.lesion_boxes:
            assert np.hypot(max(0, lx0 - x1, x0 - lx1), max(0, ly0 - y1, y0 - ly1)) >= 8.0
        assert neg.images[k][SIZE // 2 - 1: SIZE // 2 + 1, SIZE // 2 - 1: SIZE // 2 + 1].min() > 0.05  # tissue


def test_same_params_same_bytes(phantoms: Path) -> None:
    first = (phantoms / "data/processed/negatives.h5").read_bytes()
    _stage("negatives", "--params", "params.yaml")
    assert (phantoms / "data/processed/negatives.h5").read_bytes() == first


# --- matching on a drawn image ---------------------------------------------------------------------------

def _half_air_image(seed: int = 0) -> np.ndarray:
    """(200, 300) image: air (0) in the left 90 columns, textured tissue elsewhere."""
    rng = np.random.default_rng(seed)
    image = np.clip(0.55 + 0.1 * rng.standard_normal((200, 300)), 0.2, 1.0).astype(np.float32)
    image[:, :90] = 0.0
    return image


def _template_from(image: np.ndarray, box: tuple[int, int, int, int]) -> Template:
    from fpnpipe.data.crops import crop_image

    side = box[2] - box[0]
    stats = columns(crop_statistics(crop_image(image, box, SIZE)[None], np.array([side])), MATCHED)[0]
    return Template(side, tuple(float(v) for v in stats))


@pytest.mark.parametrize("box", [(60, 60, 120, 120), (180, 60, 240, 120)], ids=["on the air edge", "deep in tissue"])
def test_matching_reproduces_the_templates_share_of_air(box: tuple[int, int, int, int]) -> None:
    image = _half_air_image()
    depth, step = breast_depth(image)
    template = _template_from(image, box)
    dark = MATCHED.index("dark_share")
    sampling = {m: Sampling(NegativesParams(match=m, min_distance_px=0.0), CropParams(size=SIZE), (0.1,) * 4)
                for m in (True, False)}
    errors: dict[bool, list[float]] = {True: [], False: []}
    for k in range(20):
        for m in (True, False):
            drawn = draw_patch(image, depth, step, template, (), [], sampling[m], np.random.default_rng(k))
            assert drawn is not None
            got = columns(crop_statistics(drawn[1][None], np.array([60])), MATCHED)[0]
            errors[m].append(abs(got[dark] - template.stats[dark]))
    assert np.mean(errors[True]) < 0.05  # within 5 points of the template's air share
    if template.stats[dark] > 0:
        assert np.mean(errors[True]) < np.mean(errors[False]) / 2


def test_edge_distance_is_the_centres_distance_to_air_as_a_share_of_the_side() -> None:
    crop = np.full((40, 40), 0.6, np.float32)
    assert edge_distance(crop) == 0.5  # no air: capped
    crop[:, :10] = 0.0  # air up to column 9: the centre (19.5) is 10 px from column 9
    assert edge_distance(crop) == pytest.approx(10 / 40, abs=0.02)


def test_shortcut_auroc_is_chance_on_noise_and_high_on_a_planted_difference() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    assert abs(shortcut_auroc(a, b) - 0.5) < 0.08
    b[:, 1] += 1.5  # one statistic shifted by 1.5 standard deviations: AUROC = Phi(1.5 / sqrt 2) = 0.86
    assert shortcut_auroc(a, b) == pytest.approx(0.86, abs=0.05)


# --- the plan: how many, where, imitating what ----------------------------------------------------------

def _entry(image_id: str, split: str, lesions: int = 0) -> ImageEntry:
    boxes = tuple((10.0 + 50 * k, 10.0, 40.0 + 50 * k, 40.0) for k in range(lesions))
    return ImageEntry(image_id=image_id, source="m.csv", row=1, patient_id=image_id, split=split, shape=(400, 300),
                      lesion_boxes=boxes)


def _lesions(splits: list[str], sides: list[int]) -> CropSet:
    n = len(splits)
    rng = np.random.default_rng(1)
    return CropSet(
        images=rng.uniform(0.2, 0.9, (n, SIZE, SIZE)).astype(np.float32), fine=np.zeros((n, SIZE, SIZE), np.uint8),
        has_fine=np.zeros(n, bool), roi=np.zeros((n, SIZE, SIZE), np.uint8), label=np.zeros(n, np.int64),
        split=np.array(splits, dtype=object), patient_id=np.array([f"p{k}" for k in range(n)], dtype=object),
        image_id=np.array([f"l{k}" for k in range(n)], dtype=object),
        source_box=np.array([[0, 0, s, s] for s in sides], np.float32))


def test_plan_deals_ratio_times_the_lesions_of_each_split_evenly() -> None:
    splits = ["train"] * 6 + ["test"] * 4
    lesions = _lesions(splits, [40, 41, 42, 43, 44, 45, 90, 91, 92, 93])
    sources = [NegativeSource(_entry(f"tr{k}", "train", 1), Path(f"tr{k}.dcm")) for k in range(5)] + \
        [NegativeSource(_entry(f"te{k}", "test"), Path(f"te{k}.dcm")) for k in range(3)] + \
        [NegativeSource(_entry("lost", "test"), None)]
    plan = plan_negatives(sources, lesions, ratio=1.5, seed=3)
    assert plan.wanted == {"train": 9, "test": 6}
    per_image = {job.source.entry.image_id: len(job.templates) for job in plan.jobs}
    assert sorted(n for i, n in per_image.items() if i.startswith("tr")) == [1, 2, 2, 2, 2]
    assert sorted(n for i, n in per_image.items() if i.startswith("te")) == [2, 2, 2] and "lost" not in per_image
    assert any(note["image"] == "lost" for note in plan.notes)
    sides = [t.side for job in plan.jobs for t in job.templates]
    assert set(sides) <= {40, 41, 42, 43, 44, 45}  # test lesion crops never serve as templates
    assert max(Counter(sides).values()) - min(Counter(sides).values()) <= 1  # each template about equally often
    assert plan_negatives(sources, lesions, ratio=1.5, seed=3) == plan
    assert plan_negatives(sources, lesions, ratio=1.5, seed=4) != plan


def test_a_template_that_found_no_place_goes_to_another_image_normals_first() -> None:
    lesions = _lesions(["train"] * 2, [50, 60])
    sources = [NegativeSource(_entry("a", "train", 2), Path("a.dcm")), NegativeSource(_entry("b", "train", 1),
               Path("b.dcm")), NegativeSource(_entry("n", "train"), Path("n.dcm"))]
    plan = plan_negatives(sources, lesions, ratio=1.0, seed=0)
    template = Template(60, (0.5, 0.1, 0.0, 0.5))
    jobs = redeal(plan, [(0, template)], {0: [(1, 2, 3, 4)]}, round=1, seed=0)
    assert [(j.source.entry.image_id, j.templates, j.round) for j in jobs] == [("n", (template,), 1)]
    jobs = redeal(plan, [(2, template)], {}, round=1, seed=0)
    assert len(jobs) == 1 and jobs[0].source.entry.image_id in {"a", "b"}


def test_negatives_params_are_checked() -> None:
    assert NegativesParams().ratio == 2.0
    for bad, key in [({"ratio": 0.0}, "negatives.ratio"), ({"candidates": 0}, "negatives.candidates"),
                     ({"candidates": 50, "max_attempts": 10}, "max_attempts (10) must be at least candidates (50)"),
                     ({"per_normal_image": 4}, "replaced by negatives.ratio")]:
        with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
            parse_params({"negatives": bad}, "params.yaml")
