"""The report's browsable part on a tiny world with thumbnails, DVCLive curves and evaluate's plot files:
every test crop gets a strip (ROI outline, mm scale bar, top activations), its maps as .npz and its place
in the mammogram; every prototype an entry the case rows link to; every DVC plot a PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpnpipe.classes import CLASSES, NEGATIVE_INDEX
from fpnpipe.data.crops import margin_band
from fpnpipe.data.schema import read_crops, write_crops
from fpnpipe.data.thumbnails import Thumbnail, write_thumbnails
from fpnpipe.explain.panels import ROI_COLOR, factor_for, outline
from fpnpipe.metrics.activation import upsample_activation
from tests.test_explain_stage import SIZE, build_world

SOURCE_SHAPE = (64, 80)  # rows, cols of every (imaginary) source image
SPACING = (0.1, 0.125)  # mm per source pixel, (row, col)
BOX = (10.0, 20.0, 42.0, 52.0)  # every crop's box in source pixels


def build_report_world(root: Path, explain: dict | None = None) -> None:
    """build_world, plus: ROI discs on the lesion crops, crop boxes, thumbnails.h5 of their images, DVCLive
    curves of both training stages, and evaluate's ROC / confusion files."""
    build_world(root, explain=explain)
    for name in ("crops.h5", "negatives.h5"):
        path = root / "data/processed" / name
        crops = read_crops(path)
        lesion = crops.label != NEGATIVE_INDEX
        roi = np.where(lesion[:, None, None], crops.images > 0.6, False).astype(np.uint8)
        fine = np.stack([margin_band(r.astype(bool), 2) for r in roi]).astype(np.uint8)
        boxes = np.tile(np.array(BOX, np.float32), (len(crops), 1))
        write_crops(path, type(crops)(**{**crops.__dict__, "roi": roi, "fine": fine, "has_fine": lesion.copy(),
                                         "source_box": boxes}))
    ids = sorted({str(i).rpartition("#")[0] for name in ("crops.h5", "negatives.h5")
                  for i in read_crops(root / "data/processed" / name).image_id})
    rng = np.random.default_rng(1)
    write_thumbnails(root / "data/processed/thumbnails.h5",
                     [Thumbnail(i, rng.integers(0, 255, SOURCE_SHAPE, dtype=np.uint8), SOURCE_SHAPE, SPACING)
                      for i in ids])
    for stage, epochs in (("warmup", 3), ("finetune", 6)):
        for series, metric in (("train", "total"), ("train", "ce"), ("val", "auroc_average")):
            folder = root / "dvclive" / stage / "plots/metrics" / series
            folder.mkdir(parents=True, exist_ok=True)
            lines = [f"step\t{metric}"] + [f"{e}\t{1.0 / (e + 1) + 0.1 * e * (metric == 'auroc_average')}"
                                           for e in range(epochs)]
            (folder / f"{metric}.tsv").write_text("\n".join(lines) + "\n")
    plots = root / "reports/plots"
    plots.mkdir(parents=True)
    curve = [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 0.2, "tpr": 0.7}, {"fpr": 1.0, "tpr": 1.0}]
    for name in ("circumscribed", "indistinct", "spiculated", "detection"):
        (plots / f"roc_{name}.json").write_text(json.dumps(curve))
    confusion = [{"actual": a, "predicted": p} for a in CLASSES for p in CLASSES[:2]]
    (plots / "confusion.json").write_text(json.dumps(confusion))


def test_every_test_crop_has_a_strip_maps_and_its_mammogram(report: Path) -> None:
    doc = json.loads((report / "cases.json").read_text())
    crops = doc["crops"]
    assert [c["number"] for c in crops] == list(range(1, 13))  # 12 test crops, in predictions.csv order
    factor = factor_for(SIZE)
    for crop in crops:
        with Image.open(report / crop["strip"]) as img:
            # the crop, then one panel per top prototype (2), 4 px apart
            assert img.size == (3 * SIZE * factor + 2 * 4, SIZE * factor)
        maps = np.load(report / crop["maps"])
        assert maps["image_id"] == crop["image_id"] and int(maps["test_row"]) == crop["number"] - 1
        assert maps["prototype"].tolist() == [r["prototype"] for r in crop["rows"]]
        np.testing.assert_allclose(maps["contribution"], [r["contribution"] for r in crop["rows"]], atol=1e-6)
        for r, level in enumerate(maps["level"].tolist()):
            assert maps[f"map_{r}"].shape == ((SIZE // 4, SIZE // 4) if level == 2 else
                                              (SIZE // 8,) * 2 if level == 3 else (SIZE // 16,) * 2)
        # where the crop lies in its mammogram: the box in percent of the source image
        source = crop["source"]
        assert source["box"] == pytest.approx([100 * 10 / 80, 100 * 20 / 64, 100 * 32 / 80, 100 * 32 / 64])
        with Image.open(report / source["image"]) as img:
            assert img.size == (SOURCE_SHAPE[1], SOURCE_SHAPE[0])
    # mm per crop pixel = crop box width in source pixels / crop size x column spacing
    assert [c["mm_per_pixel"] for c in crops] == pytest.approx([32 / SIZE * SPACING[1]] * len(crops))
    # One thumbnail per source image, shared by its crops (test images here, training images for the prototypes).
    test_images = {c["source"]["image"] for c in crops}
    assert len(test_images) == len({str(c["image_id"]).rpartition("#")[0] for c in crops}) == 4
    shown = test_images | {p["source"]["image"] for p in doc["prototypes"] if p["source"]}
    assert shown == {f"images/{p.name}" for p in (report / "images").iterdir()}


def test_roi_outline_and_scale_bar_are_drawn_where_they_belong(report: Path) -> None:
    doc = json.loads((report / "cases.json").read_text())
    factor = factor_for(SIZE)
    lesion = next(c for c in doc["crops"] if c["true"] != "negative")
    negative = next(c for c in doc["crops"] if c["true"] == "negative")
    maps = np.load(report / lesion["maps"])
    with Image.open(report / lesion["strip"]) as img:
        panel = np.asarray(img.convert("RGB"))[:, : SIZE * factor]
    yellow = np.all(panel == ROI_COLOR, axis=2)
    expected = outline(np.repeat(np.repeat(maps["roi"].astype(bool), factor, 0), factor, 1))
    assert yellow.sum() > 0 and np.array_equal(yellow & expected, expected)  # every outline pixel is drawn
    # the scale bar: 1 mm = 1 / (mm per crop pixel / factor) panel pixels of white, bottom left
    mm_per_panel_px = lesion["mm_per_pixel"] / factor
    assert lesion["scale_bar_mm"] == 1.0
    bar_row = panel[SIZE * factor - 8]
    white = np.all(bar_row == 255, axis=1)
    assert white[6 : 6 + round(1.0 / mm_per_panel_px)].all()
    with Image.open(report / negative["strip"]) as img:
        assert not np.all(np.asarray(img.convert("RGB"))[:, : SIZE * factor] == ROI_COLOR, axis=2).any()


def test_rows_link_to_prototype_entries_and_back(report: Path) -> None:
    doc = json.loads((report / "cases.json").read_text())
    page = (report / "index.html").read_text()
    entries = {p["prototype"]: p for p in doc["prototypes"]}
    assert sorted(entries) == list(range(16))
    for j, entry in entries.items():
        assert f'id="prototype-{j}"' in page
        if entry["figure"]:
            assert (report / entry["figure"]).is_file()
        # every prototype's source is a training crop, whose box and mammogram are known
        assert entry["source"] is not None and (report / entry["source"]["image"]).is_file()
    linked = {int(j) for j in re.findall(r'href="#prototype-(\d+)"', page)}
    assert linked and linked <= set(entries)
    for crop in doc["crops"]:
        for row in crop["rows"]:
            assert f'href="#prototype-{row["prototype"]}"' in page
    for number, case in enumerate(doc["cases"], start=1):
        assert f'href="#crop-{case["crop_number"]}"' in page
        crop = doc["crops"][case["crop_number"] - 1]
        assert crop["case_number"] == number and crop["figure"] == case["figure"]


def test_every_dvc_plot_has_a_png(report: Path) -> None:
    doc = json.loads((report / "cases.json").read_text())
    assert [p["figure"] for p in doc["plots"]] == ["plots/training_warmup.png", "plots/training_finetune.png",
                                                   "plots/roc.png", "plots/confusion.png"]
    for plot in doc["plots"]:
        with Image.open(report / plot["figure"]) as img:
            pixels = np.asarray(img.convert("L"))
        assert pixels.std() > 10  # a chart, not a blank page


def test_upsampled_saved_map_is_the_activation_of_the_figure(report: Path) -> None:
    """The .npz holds the native map; upsampled, it is the map the strip and the figures overlay."""
    doc = json.loads((report / "cases.json").read_text())
    crop = doc["crops"][0]
    maps = np.load(report / crop["maps"])
    up = upsample_activation(maps["map_0"], SIZE)
    assert up.shape == (SIZE, SIZE)
    # its 95th-percentile box is the box cases.json gives for that row
    from fpnpipe.metrics.activation import high_activation_box

    assert list(high_activation_box(up)) == crop["rows"][0]["high_activation_box"]
