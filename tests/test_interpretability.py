"""Activation upsampling, the 95th-percentile mask and box, activation precision / area, and their summary."""

from __future__ import annotations

import numpy as np
import pytest

from fpnpipe.metrics.activation import (
    activation_area,
    activation_area_batch,
    activation_precision,
    activation_precision_batch,
    high_activation_box,
    high_activation_box_batch,
    high_activation_mask,
    summarise_by_class,
    summarise_by_level,
    upsample_activation,
    upsample_activation_batch,
)


def _hot_spot_map(size: int, spots: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(size, size) zeros with value 1 inside each (y0, y1, x0, x1) slice."""
    act = np.zeros((size, size))
    for y0, y1, x0, x1 in spots:
        act[y0:y1, x0:x1] = 1.0
    return act


# --- upsampling -------------------------------------------------------------------------------------------


def test_upsample_bilinear_half_pixel_centres_by_hand() -> None:
    # align_corners=False, scale 2: output pixel i samples source coordinate (i + 0.5) / 2 - 0.5, clamped to
    # [0, 1]: -0.25 -> 0, 0.25, 0.75, 1.25 -> 1. The map [[0, 1], [2, 3]] is 2 * row + col, and bilinear
    # interpolation of a separable-linear map is exact: out[i, j] = 2 * r[i] + r[j], r = (0, .25, .75, 1).
    act = np.array([[0.0, 1.0], [2.0, 3.0]])
    r = np.array([0.0, 0.25, 0.75, 1.0])
    expected = 2 * r[:, None] + r[None, :]
    np.testing.assert_allclose(upsample_activation(act, 4), expected, atol=1e-12)


def test_upsample_batch_shapes_and_constant_maps() -> None:
    acts = np.stack([np.full((3, 3), 2.0), np.full((3, 3), -1.0)])
    out = upsample_activation_batch(acts, (7, 5))
    assert out.shape == (2, 7, 5)
    np.testing.assert_allclose(out[0], 2.0)
    np.testing.assert_allclose(out[1], -1.0)


# --- mask and box -----------------------------------------------------------------------------------------


def test_mask_and_box_single_hot_spot() -> None:
    # 6 of 100 pixels are 1: sorted, positions 94..99 are 1 and the 95th percentile sits at position
    # 0.95 * 99 = 94.05, between two ones -> threshold 1, so exactly the hot spot is kept.
    act = _hot_spot_map(10, [(4, 6, 1, 4)])  # rows 4-5, columns 1-3
    mask = high_activation_mask(act)
    np.testing.assert_array_equal(mask, act == 1.0)
    assert high_activation_box(act) == (1, 4, 4, 6)  # (x0, y0, x1, y1), exclusive ends
    x0, y0, x1, y1 = high_activation_box(act)
    assert mask[y0:y1, x0:x1].sum() == mask.sum()


def test_box_two_separate_hot_spots_gives_one_large_box() -> None:
    # 2 x 12 = 24 of 400 pixels hot (6 %), percentile position 0.95 * 399 = 379.05 >= 376 -> threshold 1.
    act = _hot_spot_map(20, [(1, 4, 2, 6), (15, 18, 12, 16)])
    assert high_activation_box(act) == (2, 1, 16, 18)


def test_box_batch_matches_single_and_graded_peak() -> None:
    # A peak whose values fall with distance: only the top pixels pass; the box must hold exactly those.
    yy, xx = np.mgrid[0:16, 0:16]
    peak = -((yy - 3.0) ** 2 + (xx - 11.0) ** 2)
    spots = _hot_spot_map(16, [(10, 13, 0, 5)])
    boxes = high_activation_box_batch(np.stack([peak, spots]))
    assert boxes.shape == (2, 4)
    assert tuple(boxes[1]) == high_activation_box(spots) == (0, 10, 5, 13)
    kept = high_activation_mask(peak)
    rows, cols = np.nonzero(kept)
    assert tuple(boxes[0]) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    assert kept[3, 11] and not kept[15, 0]


def test_constant_map_keeps_every_pixel() -> None:
    act = np.full((8, 8), 0.3)
    assert high_activation_mask(act).all()
    assert high_activation_box(act) == (0, 0, 8, 8)
    assert activation_area(act) == 1.0


# --- activation precision and area ------------------------------------------------------------------------


def test_activation_precision_inside_outside_half() -> None:
    act = _hot_spot_map(10, [(4, 6, 2, 6)])  # 8 hot pixels: rows 4-5, columns 2-5 (> 5 % of 100)
    inside = np.zeros((10, 10), dtype=bool)
    inside[3:7, 1:7] = True  # covers the hot spot
    outside = np.zeros((10, 10), dtype=bool)
    outside[0:2, :] = True  # away from it
    half = np.zeros((10, 10), dtype=bool)
    half[:, 0:4] = True  # columns 0-3: hot columns 2, 3 of 2..5 -> 4 of 8 pixels
    empty = np.zeros((10, 10), dtype=bool)
    assert activation_precision(act, inside) == 1.0
    assert activation_precision(act, outside) == 0.0
    assert activation_precision(act, half) == pytest.approx(0.5)
    assert activation_precision(act, empty) == 0.0
    batch = activation_precision_batch(np.stack([act] * 4), np.stack([inside, outside, half, empty]))
    np.testing.assert_allclose(batch, [1.0, 0.0, 0.5, 0.0])


def test_activation_precision_constant_map_is_region_fraction() -> None:
    # Every pixel is kept, so precision = relevant pixels / all pixels = 25 / 100.
    relevant = np.zeros((10, 10), dtype=np.uint8)
    relevant[:5, :5] = 1
    assert activation_precision(np.ones((10, 10)), relevant) == pytest.approx(0.25)


def test_activation_area_values() -> None:
    small = _hot_spot_map(10, [(4, 6, 1, 4)])  # 6 of 100 pixels at the maximum, the rest at the minimum
    large = _hot_spot_map(10, [(0, 5, 0, 10)])  # 50 of 100
    np.testing.assert_allclose(activation_area_batch(np.stack([small, large])), [0.06, 0.5])
    ramp = np.tile(np.arange(10, dtype=float), (10, 1))  # columns 0..9: (a - 0) / 9 >= 0.5 from column 5 on
    assert activation_area(ramp) == 0.5
    assert activation_area(ramp, relative=0.9) == 0.1  # only column 9 (9/9); 8/9 < 0.9
    assert activation_area(np.full((4, 4), 0.3)) == 1.0  # a constant map activates everywhere
    # Scale, not the share of the top 5%: the same peak blurred wider covers more of the crop.
    yy, xx = np.mgrid[:40, :40]
    narrow = np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 2.0**2))
    wide = np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / (2 * 6.0**2))
    assert activation_area(wide) > 5 * activation_area(narrow)


def test_precision_shape_mismatch_and_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="relevant must have"):
        activation_precision(np.ones((4, 4)), np.ones((5, 5), dtype=bool))
    with pytest.raises(ValueError, match="percentile"):
        high_activation_mask(np.ones((4, 4)), percentile=120)
    with pytest.raises(ValueError, match="NaN"):
        high_activation_mask(np.full((4, 4), np.nan))


# --- summary per level and class --------------------------------------------------------------------------


def test_summary_by_level_and_class() -> None:
    values = np.array([1.0, 0.0, 0.5, 1.0])
    levels = np.array([2, 2, 3, 5])
    classes = np.array([0, 1, 0, 2])
    out = summarise_by_level(values, levels)
    assert out["average"] == pytest.approx(0.625)
    assert out["level_2"] == pytest.approx(0.5)
    assert out["level_3"] == pytest.approx(0.5)
    assert out["level_4"] is None
    assert out["level_5"] == pytest.approx(1.0)
    assert summarise_by_class(values, classes) == {"circumscribed": 0.75, "indistinct": 0.0, "spiculated": 1.0,
                                                   "negative": None}
    with pytest.raises(ValueError, match="one length"):
        summarise_by_class(values, classes[:3])


def test_summary_rejects_unknown_level_and_handles_empty() -> None:
    with pytest.raises(ValueError, match="unknown FPN levels"):
        summarise_by_level(np.array([1.0]), np.array([6]))
    empty = summarise_by_level(np.array([]), np.array([], dtype=int))
    assert empty["average"] is None and empty["level_2"] is None
