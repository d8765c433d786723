"""The case figure (paper Figure 3 layout) and the gallery (Figure 5): panels, their count and sizes,
duplicate marks, and the PNG's size. (The 95th-percentile box itself is tested in test_interpretability.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from fpnpipe.classes import CLASSES
from fpnpipe.data.schema import CropSet
from fpnpipe.explain import figures, gallery
from fpnpipe.explain.cases import explain_images
from fpnpipe.explain.drawing import DUPLICATE_COLOR, activation_scale
from fpnpipe.explain.figures import case_figure, save_figure
from fpnpipe.explain.gallery import gallery_figure, gallery_levels
from tests.test_explain_stage import SIZE, project, tiny_crops, tiny_model


@pytest.fixture(scope="module")
def explained():
    """A projected tiny model's record, two explained test cases, and the colour scale."""
    model, _ = tiny_model()
    lesions, negatives = tiny_crops()
    record = project(model, CropSet.concat([lesions.in_split("train"), negatives.in_split("train")], SIZE))
    test = lesions.in_split("test")
    cases = explain_images(model, test.images[:2], list(test.image_id[:2]), [int(v) for v in test.label[:2]], top=3)
    return record, cases, activation_scale(model.prototype_layer.similarity, record.self_activation)


def _inches(fig, ax) -> tuple[float, float]:
    pos = ax.get_position()
    w, h = fig.get_size_inches()
    return pos.width * w, pos.height * h


def test_case_figure_has_five_equal_square_panels_per_row(explained, tmp_path) -> None:
    record, cases, scale = explained
    fig = case_figure(cases[0], record, scale, dpi=80)
    labels = [ax.get_label() for ax in fig.axes]
    panels = [ax for ax in fig.axes if ax.get_label() != "colorbar"]
    assert sorted(labels) == sorted([f"{c}{r}" for r in range(3) for c in "abcde"] + ["colorbar"])
    for ax in panels:
        assert _inches(fig, ax) == pytest.approx((figures.MIN_PANEL_IN, figures.MIN_PANEL_IN), abs=1e-6)
    # Rows are stacked top to bottom, columns left to right, without overlap.
    by = {ax.get_label(): ax.get_position() for ax in panels}
    for r in range(3):
        lefts = [by[f"{c}{r}"].x0 for c in "abcde"]
        assert lefts == sorted(lefts) and all(by[f"{c}{r}"].x1 < by[f"{d}{r}"].x0 for c, d in zip("abcd", "bcde",
                                                                                                  strict=True))
    assert by["a0"].y0 > by["a1"].y1 and by["a1"].y0 > by["a2"].y1
    text = " ".join(t.get_text() for t in fig.texts)
    assert cases[0].rows[0].contribution != 0 and f"prototype {cases[0].rows[0].prototype}" in text
    assert f"classified as {CLASSES[cases[0].predicted]}" in text
    assert f"FPN level {cases[0].rows[0].level}" in text

    path = tmp_path / "case.png"
    save_figure(fig, path)
    with Image.open(path) as img:
        w, h = fig.get_size_inches()
        assert img.size == (round(w * 80), round(h * 80))


def test_case_figure_rows_follow_top_prototypes(explained) -> None:
    record, cases, scale = explained
    one_row = dataclasses.replace(cases[1], rows=cases[1].rows[:1])
    fig = case_figure(one_row, record, scale)
    assert len(fig.axes) == 5 + 1
    assert fig.get_size_inches()[1] < case_figure(cases[1], record, scale).get_size_inches()[1]
    with pytest.raises(ValueError, match="no prototype rows"):
        case_figure(dataclasses.replace(cases[1], rows=()), record, scale)


def test_duplicates_and_sourceless_prototypes_are_marked(explained) -> None:
    record, cases, scale = explained
    j = cases[0].rows[0].prototype
    dup = record.duplicate_of.copy()
    dup[j] = (j + 1) % len(dup)
    fig = case_figure(cases[0], dataclasses.replace(record, duplicate_of=dup), scale)
    by = {ax.get_label(): ax for ax in fig.axes}
    red = np.array([0.839, 0.153, 0.157])
    for column in "cde":
        edge = np.array(by[f"{column}0"].spines["top"].get_edgecolor()[:3])
        assert np.allclose(edge, red, atol=0.01), column
    assert np.allclose(by["c1"].spines["top"].get_edgecolor()[:3], [0.267] * 3, atol=0.01)
    assert any("duplicate of prototype" in t.get_text() for t in fig.texts)
    high = record.high_box.copy()
    high[j] = 0
    fig = case_figure(cases[0], dataclasses.replace(record, high_box=high), scale)
    panel_texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert panel_texts.count("no source\npatch") == 3
    assert DUPLICATE_COLOR.lower() == "#d62728"


def test_gallery_has_a_pair_of_panels_per_prototype_grouped_by_class(explained) -> None:
    record, _, scale = explained
    assert gallery_levels(record) == (2, 3, 4, 5)
    for level in gallery_levels(record):
        members = np.nonzero(record.prototype_level == level)[0]
        fig = gallery_figure(record, level, scale)
        labels = sorted(ax.get_label() for ax in fig.axes)
        assert labels == sorted([f"source{j}" for j in members] + [f"self{j}" for j in members] + ["colorbar"])
        for ax in fig.axes:
            if ax.get_label() != "colorbar":
                assert _inches(fig, ax) == pytest.approx((gallery.MIN_PANEL_IN, gallery.MIN_PANEL_IN), abs=1e-6)
        text = " ".join(t.get_text() for t in fig.texts)
        assert f"FPN level {level} prototypes" in text
        for j in members:
            assert f"prototype {j}: {CLASSES[record.prototype_class[j]]}, level {level}" in text
        # One class per block, in class order, top to bottom.
        tops = [fig.axes[[a.get_label() for a in fig.axes].index(f"source{j}")].get_position().y0 for j in members]
        assert tops == sorted(tops, reverse=True)


def test_gallery_marks_duplicates(explained) -> None:
    record, _, scale = explained
    dup = np.full_like(record.duplicate_of, -1)
    dup[1] = 0
    fig = gallery_figure(dataclasses.replace(record, duplicate_of=dup), int(record.prototype_level[1]), scale)
    assert any(t.get_text() == "DUPLICATE of prototype 0" for t in fig.texts)
    by = {ax.get_label(): ax for ax in fig.axes}
    assert by["source1"].spines["left"].get_linewidth() == 3.0
    assert by["source0"].spines["left"].get_linewidth() < 3.0


def test_panels_grow_so_that_every_crop_pixel_gets_a_screen_pixel(explained) -> None:
    record, cases, scale = explained
    dpi = 12  # a 32 px crop needs 32 / 12 = 2.67 in, more than the minimum panel
    side = SIZE / dpi
    assert side > max(figures.MIN_PANEL_IN, gallery.MIN_PANEL_IN)
    for fig in (case_figure(cases[0], record, scale, dpi), gallery_figure(record, 2, scale, dpi)):
        for ax in fig.axes:
            if ax.get_label() != "colorbar":
                assert _inches(fig, ax) == pytest.approx((side, side), abs=1e-6)


def test_panel_a_shows_the_roi_outline_and_a_scale_bar(explained) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    record, cases, scale = explained
    roi = np.zeros((SIZE, SIZE), bool)
    roi[10:20, 12:22] = True
    fig = case_figure(cases[0], record, scale, roi=roi, mm_per_pixel=0.05)
    for r in range(len(cases[0].rows)):
        ax = next(a for a in fig.axes if a.get_label() == f"a{r}")
        (contour,) = [c for c in ax.get_children() if type(c).__name__ == "QuadContourSet"]
        xs, ys = np.concatenate([p.vertices for p in contour.get_paths()]).T
        assert xs.min() == pytest.approx(11.5, abs=0.51) and xs.max() == pytest.approx(21.5, abs=0.51)
        (bar,) = [c for c in ax.get_children() if isinstance(c, AnchoredSizeBar)]
        # 32 px crops at 0.05 mm per pixel: at most a third of 1.6 mm fits, so the bar is 0.5 mm (10 px)
        assert bar.txt_label.get_text() == "0.5 mm"
    bare = case_figure(cases[0], record, scale)
    ax = next(a for a in bare.axes if a.get_label() == "a0")
    assert not [c for c in ax.get_children() if isinstance(c, AnchoredSizeBar)]
