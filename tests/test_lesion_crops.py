"""crop_lesion: the one function that cuts a lesion for preprocessing and explain-image; its refusals and
the memory it takes (bounded by the image, never by a number in a manifest)."""

from __future__ import annotations

import contextlib
import tracemalloc

import numpy as np
import pytest

from fpnpipe.config import CropParams
from fpnpipe.data.crops import context_box, crop_image, disc_in_box, disc_mask, inside_fraction
from fpnpipe.data.lesion_crops import Annotation, CropRefused, crop_lesion

H, W = 200, 160
CROP = CropParams(size=32, context=1.6, min_image_fraction=0.5)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((H, W)).astype(np.float32)


def _refusal(image: np.ndarray, annotation: Annotation, crop: CropParams = CROP) -> str:
    with pytest.raises(CropRefused) as info:
        crop_lesion(image, annotation, crop)
    return str(info.value)


def test_disc_in_box_is_the_image_disc_under_the_box():
    for circle, box in [((40.3, 50.0, 12.5), (20, 30, 61, 71)), ((3.0, 4.0, 9.0), (-10, -12, 16, 14)),
                        ((150.0, 190.0, 30.0), (110, 150, 190, 230))]:
        x0, y0, x1, y1 = box
        padded = np.zeros((H + 200, W + 200), bool)
        padded[100 : 100 + H, 100 : 100 + W] = disc_mask((H, W), circle)
        expected = padded[100 + y0 : 100 + y1, 100 + x0 : 100 + x1]
        np.testing.assert_array_equal(disc_in_box(circle, box, (H, W)), expected)


def test_inside_fraction_from_geometry():
    assert inside_fraction((0, 0, 10, 10), (H, W)) == 1.0
    assert inside_fraction((-5, 0, 5, 10), (H, W)) == 0.5
    assert inside_fraction((-5, -5, 5, 5), (H, W)) == 0.25
    assert inside_fraction((W, H, W + 4, H + 4), (H, W)) == 0.0


def test_box_crop_is_the_context_box_resized(image):
    lesion = crop_lesion(image, Annotation(box=(50.0, 60.0, 80.0, 100.0)), CROP)
    box = context_box((50.0, 60.0, 80.0, 100.0), 1.6)
    assert lesion.box == box and lesion.image_fraction == 1.0 and not lesion.has_fine and not lesion.roi.any()
    np.testing.assert_array_equal(lesion.image, crop_image(image, box, 32))


def test_circle_at_the_border_passes_and_its_share_is_reported(image):
    lesion = crop_lesion(image, Annotation(circle=(10.0, 100.0, 10.0)), CROP)
    # Box side 32 centred on x = 10: 26 of its 32 columns are inside the image.
    assert lesion.image_fraction == pytest.approx(26 / 32)
    assert lesion.roi.any() and not lesion.has_fine


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (Annotation(circle=(5.0, 5.0, 40.0)), "only 29% of the crop box lies inside the image, below crop.min"),
        (Annotation(circle=(80.0, 100.0, 3000.0)), "crop box of 9600 px"),
        (Annotation(circle=(80.0, 100.0, 1e300)), "longer than the image's longer side (200 px)"),
        (Annotation(circle=(80.0, 100.0, float("inf"))), "needs finite numbers"),
        (Annotation(circle=(80.0, float("nan"), 5.0)), "needs finite numbers"),
        (Annotation(box=(0.0, 0.0, 1e300, 20.0)), "extends outside the image (160x200)"),
        (Annotation(box=(10.0, 10.0, 11.0, 30.0)), "smaller than 2 pixels"),
        (Annotation(roi=np.zeros((H, W), bool)), "ROI mask is empty"),
        (Annotation(roi=np.ones((H, W + 1), bool)), "ROI mask size 161x200 differs"),
        (Annotation(box=(1.0, 1.0, 9.0, 9.0), circle=(5.0, 5.0, 2.0)), "exactly one of"),
    ],
)
def test_refusals(image, annotation, words):
    assert words in _refusal(image, annotation)


def test_min_image_fraction_is_a_param(image):
    corner = Annotation(circle=(5.0, 5.0, 40.0))
    assert crop_lesion(image, corner, CropParams(size=32, min_image_fraction=0.25)).image_fraction < 0.3


def test_constant_crop_is_refused():
    flat = np.zeros((H, W), np.float32)
    flat[:, 100:] = np.linspace(0, 1, W - 100)[None, :]
    assert "constant crop: every pixel is 0" in _refusal(flat, Annotation(box=(20.0, 20.0, 50.0, 50.0)))
    crop_lesion(flat, Annotation(box=(90.0, 20.0, 120.0, 50.0)), CROP)  # straddles the ramp: not constant


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    with contextlib.suppress(CropRefused):
        fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_follows_the_image_not_the_radius():
    big = np.random.default_rng(1).random((1200, 1000)).astype(np.float32)  # 4.8 MB
    crop = CropParams(size=32, min_image_fraction=0.0)
    # Radii in the thousands and beyond are refused before anything of their size is allocated.
    for radius in (5000.0, 1e6, 1e300):
        assert _peak_bytes(lambda r=radius: crop_lesion(big, Annotation(circle=(500.0, 600.0, r)), crop)) < 100_000
    # The largest circle allowed (crop box as long as the image's longer side) takes a few image sizes.
    largest = 1200 / (2 * 1.6)
    peak = _peak_bytes(lambda: crop_lesion(big, Annotation(circle=(500.0, 600.0, largest)), crop))
    assert peak < 4 * big.nbytes
