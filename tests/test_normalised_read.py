"""The fast preprocessing read (read_normalised: a DICOM's normalisation folded into its lookup table and
applied only where a crop reads) gives exactly what reading then normalising gives."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpnpipe.config import CropParams
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.images import ImageReadError, read_image, read_normalised
from fpnpipe.data.intensity import ConstantImageError, NormalisedImage, normalize_intensity
from fpnpipe.data.lesion_crops import Annotation, CropRefused, crop_lesion

PERCENTILES = (0.5, 99.5)


def _tissue(seed: int, shape: tuple[int, int] = (700, 520), high: int = 4095) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = high * (0.3 + 0.3 * np.sin(xx / 37.0) * np.cos(yy / 23.0)) + rng.normal(0, high / 40, shape)
    base[:, : shape[1] // 6] = high * 0.02  # air
    return np.clip(base, 0, high)


CASES = {
    "plain 12 bit": dict(pixels=_tissue(0).astype(np.uint16), bits_stored=12),
    "monochrome1, RLE": dict(pixels=_tissue(1).astype(np.uint16), bits_stored=12, photometric="MONOCHROME1", rle=True),
    "rescaled, windowed": dict(pixels=_tissue(2).astype(np.uint16), bits_stored=12, rescale=(0.5, 100.0),
                               window=(1000.0, 1500.0)),
    "signed 12 bit": dict(pixels=(_tissue(3) - 2048).astype(np.int16), bits_stored=12),
    "16 bit": dict(pixels=_tissue(4, high=65535).astype(np.uint16)),
    "8 bit": dict(pixels=_tissue(5, high=255).astype(np.uint8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("voi_window", [False, True])
def test_the_same_bits_as_reading_then_normalising(tmp_path: Path, name: str, voi_window: bool) -> None:
    case = dict(CASES[name])
    path = write_dicom(tmp_path / "x.dcm", case.pop("pixels"), uid_key=name, **case)
    expected = normalize_intensity(read_image(path, voi_window=voi_window), PERCENTILES)
    lazy = read_normalised(path, voi_window=voi_window, percentiles=PERCENTILES)
    assert isinstance(lazy, NormalisedImage) and lazy.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(lazy), expected)  # bit for bit
    np.testing.assert_array_equal(lazy[100:300, 50:90], expected[100:300, 50:90])
    h, w = expected.shape
    for box in [(200.0, 250.0, 290.0, 330.0), (w - 60.0, h - 50.0, w - 2.0, h - 2.0), (5.0, 5.0, 60.0, 70.0)]:
        try:
            want = crop_lesion(expected, Annotation(box=box), CropParams(size=64)).image
        except CropRefused as exc:
            with pytest.raises(CropRefused, match=re.escape(str(exc))):
                crop_lesion(lazy, Annotation(box=box), CropParams(size=64))
            continue
        np.testing.assert_array_equal(crop_lesion(lazy, Annotation(box=box), CropParams(size=64)).image, want)


def test_raster_files_take_the_plain_path(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(_tissue(6).astype(np.uint16)).save(path)
    np.testing.assert_array_equal(read_normalised(path, voi_window=False, percentiles=PERCENTILES),
                                  normalize_intensity(read_image(path), PERCENTILES))


def test_refusals_are_unchanged(tmp_path: Path) -> None:
    flat = write_dicom(tmp_path / "flat.dcm", np.full((300, 200), 700, np.uint16), uid_key="f", bits_stored=12)
    with pytest.raises(ConstantImageError, match="^constant image"):
        read_normalised(flat, voi_window=False, percentiles=PERCENTILES)
    almost = np.full((300, 200), 700, np.uint16)
    almost[:2, :2] = 900
    nearly = write_dicom(tmp_path / "nearly.dcm", almost, uid_key="n", bits_stored=12)
    with pytest.raises(ConstantImageError, match="^nearly constant image"):
        read_normalised(nearly, voi_window=False, percentiles=PERCENTILES)
    wide = _tissue(7).astype(np.uint16)
    wide[10, 10] = 5000  # above BitsStored 12: refused, as read_image refuses it
    bad = write_dicom(tmp_path / "bad.dcm", wide, uid_key="b", bits_stored=12)
    with pytest.raises(ImageReadError, match="bits above HighBit"):
        read_normalised(bad, voi_window=False, percentiles=PERCENTILES)
