"""The explain stage end to end on a tiny world (crops, a projected tiny model, its record): the case
figures, the gallery, cases.json and index.html; and the vgg16 black box, which has nothing to explain."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fpnpipe.classes import CLASSES, NEGATIVE_INDEX
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.data.dataset import CropDataset, make_loader
from fpnpipe.data.projection_record import write_projection_record
from fpnpipe.data.schema import CropSet, write_crops
from fpnpipe.model.build import build_network, prototype_network
from fpnpipe.model.checkpoint import model_config, save_checkpoint
from fpnpipe.runtime import Runtime
from fpnpipe.train.projection import apply_projection, find_nearest_patches, projection_record
from tests.conftest import write_params

SIZE = 32
PER_CLASS = 3  # crops per class and split


def _crop(rng: np.random.Generator, label: int) -> np.ndarray:
    """(SIZE, SIZE) float32 in [0, 1]: noisy tissue, with a disc of class-dependent size for a lesion."""
    img = 0.4 + 0.08 * rng.standard_normal((SIZE, SIZE))
    if label != NEGATIVE_INDEX:
        yy, xx = np.mgrid[:SIZE, :SIZE]
        img[(xx - 16) ** 2 + (yy - 16) ** 2 <= (4 + 3 * label) ** 2] += 0.35
    return np.clip(img, 0, 1).astype(np.float32)


def tiny_crops(seed: int = 0) -> tuple[CropSet, CropSet]:
    """(lesion crops, negative patches) with train and test splits; image ids with characters that a file
    name must not carry."""
    rng = np.random.default_rng(seed)
    parts: dict[bool, list[CropSet]] = {True: [], False: []}
    for split in ("train", "test"):
        for label in range(len(CLASSES)):
            for k in range(PER_CLASS):
                roi = np.zeros((1, SIZE, SIZE), np.uint8)
                parts[label != NEGATIVE_INDEX].append(CropSet(
                    images=_crop(rng, label)[None], fine=roi.copy(), has_fine=np.array([False]), roi=roi,
                    label=np.array([label], np.int64), split=np.array([split], dtype=object),
                    patient_id=np.array([f"p{split}{label}{k}"], dtype=object),
                    image_id=np.array([f"img/{split} {CLASSES[label]}#{k}"], dtype=object),
                    source_box=np.array([[0, 0, SIZE, SIZE]], np.float32),
                ))
    return CropSet.concat(parts[True], SIZE), CropSet.concat(parts[False], SIZE)


def tiny_model(arch: str = "fpn_iaiabl", seed: int = 0):
    """A tiny network (1 prototype per class per level) and its model config."""
    model_params = ModelParams(arch=arch, width=0.125, fpn_channels=16, addon_channels=16)
    prototype_params = PrototypeParams(
        per_class={c: (1, 1, 1, 1) for c in CLASSES}, top_k=(2, 1, 1, 1)
    )
    torch.manual_seed(seed)
    return build_network(model_params, prototype_params), model_config(model_params, prototype_params)


def project(model, train: CropSet):
    """Project the prototypes onto the training crops (stage B) and return the record."""
    runtime = Runtime(torch.device("cpu"), bf16=False, channels_last=False, pin_memory=False)
    dataset = CropDataset(train)
    nearest = find_nearest_patches(model, make_loader(dataset, 16, shuffle=False), runtime)
    apply_projection(model, nearest)
    return projection_record(model, dataset, nearest, runtime)


def build_world(root: Path, arch: str = "fpn_iaiabl", explain: dict | None = None) -> Path:
    """crops, negatives, models/final.pt (+ record) and params.yaml under `root`; returns the params path."""
    lesions, negatives = tiny_crops()
    (root / "data/processed").mkdir(parents=True, exist_ok=True)
    write_crops(root / "data/processed/crops.h5", lesions)
    write_crops(root / "data/processed/negatives.h5", negatives)
    model, config = tiny_model(arch)
    if prototype_network(model) is not None:
        train = CropSet.concat([lesions.in_split("train"), negatives.in_split("train")], SIZE)
        write_projection_record(root / "models/final_prototypes.h5", project(model, train))
    save_checkpoint(root / "models/final.pt", model, config)
    settings = {"n_cases": 6, "top_prototypes": 2, "dpi": 60, **(explain or {})}
    return write_params(root / "params.yaml", {"crop": {"size": SIZE}, "train": {"device": "cpu"}, "explain": settings})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One world built per module; each test gets its own copy (the tests change and delete files)."""
    root = tmp_path_factory.mktemp("explain_world")
    build_world(root)
    return root


@pytest.fixture
def world(in_tmp: Path, template: Path) -> Path:
    shutil.copytree(template, in_tmp, dirs_exist_ok=True)
    return in_tmp


def test_explain_writes_figures_gallery_page_and_cases_json(world: Path, run_stage) -> None:
    result = run_stage("explain", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    out = world / "reports/explanations"
    doc = json.loads((out / "cases.json").read_text())
    cases = doc["cases"]
    assert len(cases) == 6
    # Every class is covered as true label (one case per class per round).
    assert {c["true"] for c in cases} == set(CLASSES)
    for case in cases:
        assert case["correct"] == (case["true"] == case["predicted"])
        assert abs(sum(case["probabilities"].values()) - 1) < 1e-4
        assert case["predicted"] == max(case["probabilities"], key=case["probabilities"].get)
        # The predicted class's logit is the sum of all contributions (the last layer has no bias).
        assert case["sum_of_contributions"] == pytest.approx(case["logit"], abs=1e-4)
        contributions = [row["contribution"] for row in case["rows"]]
        assert len(contributions) == 2 and contributions == sorted(contributions, reverse=True)
        figure = out / case["figure"]
        assert figure.parent == out / "cases" and figure.is_file()
        assert re.fullmatch(r"\d\d_[A-Za-z0-9_-]+\.png", figure.name), figure.name
    assert len({c["figure"] for c in cases}) == len(cases)
    assert [g["level"] for g in doc["gallery"]] == [2, 3, 4, 5]
    for entry in doc["gallery"]:
        with Image.open(out / entry["figure"]) as img:
            assert img.format == "PNG" and min(img.size) > 100
    page = (out / "index.html").read_text()
    for ref in [c["figure"] for c in cases] + [g["figure"] for g in doc["gallery"]]:
        assert f'src="{ref}"' in page
    assert not list(out.parent.glob(".explanations*"))  # the atomic directory left nothing behind
    # Without thumbnails, DVCLive curves or evaluate's plot files the page still works and says what is missing.
    assert doc["plots"] == [] and all(c["source"] is None and c["scale_bar_mm"] is None for c in doc["crops"])
    assert "No plot inputs were found" in page and "pixel spacing unknown" in page


def test_explain_fails_clearly_without_a_record(world: Path, run_stage) -> None:
    (world / "models/final_prototypes.h5").unlink()
    result = run_stage("explain", "--params", "params.yaml")
    assert result.exit_code == 1
    assert "final_prototypes.h5" in result.output
    assert not (world / "reports/explanations").exists()


def test_explain_refuses_a_record_of_another_model(world: Path, run_stage) -> None:
    other, config = tiny_model(seed=1)
    other_params = ModelParams(width=0.125, fpn_channels=16)
    bigger = PrototypeParams(per_class={c: (2, 1, 1, 1) for c in CLASSES}, top_k=(2, 1, 1, 1))
    save_checkpoint(world / "models/final.pt", build_network(other_params, bigger), model_config(other_params, bigger))
    result = run_stage("explain", "--params", "params.yaml")
    assert result.exit_code == 1
    assert "does not describe" in result.output


def test_black_box_gets_a_page_without_figures(in_tmp: Path, run_stage) -> None:
    build_world(in_tmp, arch="vgg16", explain={"n_cases": 3})
    result = run_stage("explain", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    out = in_tmp / "reports/explanations"
    doc = json.loads((out / "cases.json").read_text())
    assert doc["model"] == {"arch": "vgg16", "n_prototypes": 0}
    assert len(doc["cases"]) == 3 and all(c["figure"] is None and c["rows"] == [] for c in doc["cases"])
    assert doc["gallery"] == [] and "no prototypes" in doc["note"]
    page = (out / "index.html").read_text()
    assert "has no prototypes" in page
    assert not (out / "cases").exists() or not any((out / "cases").iterdir())
    # Every test crop is still listed, as its crop alone (no prototype, no activation).
    assert len(doc["crops"]) == 12 and all(c["rows"] == [] for c in doc["crops"])
    for crop in doc["crops"]:
        with Image.open(out / crop["strip"]) as img:
            assert img.size == (SIZE * 5, SIZE * 5)  # one panel: the 32 px crop enlarged 5 x to >= 160 px
    assert set(re.findall(r'<img[^>]* src="([^"]*)"', page)) == {c["strip"] for c in doc["crops"]}
