"""Crop geometry at image borders, antialiased resizing, and the margin band."""

from __future__ import annotations

import numpy as np
import pytest

from fpnpipe.data.crops import (
    context_box,
    crop_image,
    crop_mask,
    disc_mask,
    extract,
    margin_band,
    mask_box,
    resize,
)


def test_context_box_is_square_centred_and_scaled():
    x0, y0, x1, y1 = context_box((10.0, 20.0, 30.0, 30.0), 1.5)  # 20 x 10 box, centre (20, 25)
    assert x1 - x0 == y1 - y0 == 30
    assert (x0 + x1) / 2 == 20 and (y0 + y1) / 2 == 25


def test_context_box_rounds_side_up():
    x0, _, x1, _ = context_box((0.0, 0.0, 7.0, 3.0), 1.1)  # 7.7 -> 8
    assert x1 - x0 == 8


def test_mask_box_is_tight_and_exclusive():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_box(m) == (3, 2, 9, 5)
    with pytest.raises(ValueError, match="empty"):
        mask_box(np.zeros((4, 4), bool))


@pytest.mark.parametrize("box", [(-3, -2, 5, 6), (6, 7, 14, 15), (-5, 4, 3, 12)])
def test_extract_pads_outside_the_image(box):
    image = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    out = extract(image, box, fill=-1.0)
    x0, y0, x1, y1 = box
    assert out.shape == (y1 - y0, x1 - x0)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            y, x = y0 + r, x0 + c
            expected = image[y, x] if 0 <= y < 10 and 0 <= x < 10 else -1.0
            assert out[r, c] == expected


def test_box_entirely_outside_gives_fill_only():
    out = extract(np.ones((5, 5), np.float32), (10, 10, 14, 14), fill=0.0)
    assert out.shape == (4, 4) and not out.any()


def test_crop_at_same_size_is_identity_and_border_is_air():
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    assert np.allclose(crop_image(image, (5, 6, 37, 38), 32), image[6:38, 5:37], atol=1e-6)
    corner = crop_image(image, (-16, -16, 16, 16), 32)
    assert np.all(corner[:16, :] == 0) and np.all(corner[:, :16] == 0)
    assert np.allclose(corner[16:, 16:], image[:16, :16], atol=1e-6)


def test_downsizing_is_antialiased():
    # A one-pixel checkerboard shrunk 4x must average to grey; point sampling would give 0 or 1.
    board = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    small = resize(board, 16)
    assert np.allclose(small[2:-2, 2:-2], 0.5, atol=0.05)


def test_crop_mask_keeps_majority_coverage():
    mask = np.zeros((20, 20), bool)
    mask[:, :10] = True
    out = crop_mask(mask, (0, 0, 20, 20), 10)
    assert out[:, :5].all() and not out[:, 5:].any()


def _band_brute_force(roi: np.ndarray, w: float) -> np.ndarray:
    """Direct definition: pixels within distance w of a pixel on the other side of the ROI boundary."""
    inside = np.argwhere(roi)
    outside = np.argwhere(~roi)
    band = np.zeros_like(roi)
    for p in np.ndindex(roi.shape):
        other = outside if roi[p] else inside
        if len(other) and np.min(np.hypot(*(other - np.array(p)).T)) <= w:
            band[p] = True
    return band


@pytest.mark.parametrize("w", [1, 2, 3])
def test_margin_band_matches_its_definition(w):
    roi = disc_mask((24, 24), (11.0, 12.0, 6.5))
    roi[3:6, 10:13] = True  # a bump, so the outline is not convex
    assert np.array_equal(margin_band(roi, w), _band_brute_force(roi, w))


def test_margin_band_width_along_a_straight_edge():
    roi = np.zeros((20, 20), bool)
    roi[:, :10] = True  # vertical edge between columns 9 and 10, touching the crop's left border
    band = margin_band(roi, 3)
    assert band[:, 7:13].all()  # 3 columns each side of the edge
    assert not band[:, :7].any() and not band[:, 13:].any()  # the crop border is no boundary


def test_margin_band_of_empty_roi_is_empty():
    assert not margin_band(np.zeros((8, 8), bool), 2).any()
