"""Read images and masks from DICOM or PNG / TIFF / PGM files (decided by content, not by name).

- `read_image(path)`: (H, W) float32 in presentation space, higher = denser / brighter (MONOCHROME2).
- `read_mask(path)`: (H, W) bool, True where the stored value is nonzero; the file must be two-level.
- `read_header(path)` / `image_shape(path)`: header facts without decoding pixels.

Every problem (missing file, not an image, colour, multi-frame, truncated, ...) raises ImageReadError
with a short `reason` that the preprocessing report shows per row.

Raster files (Pillow): 1-bit, 8-bit, 16-bit and 32-bit integer or float grey images are read as they are.
A colour-typed file whose pixels are grey (R = G = B, opaque), as many tools export masks, is read as
grey; a file with real colour is refused rather than converted, since a silent luminance conversion
would hide a wrong file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fpnpipe.data.dicom import (
    ImageHeader,
    ImageReadError,
    dicom_header,
    dicom_stored,
    has_dicom_preamble,
    read_dicom_image,
    read_dicom_normalised,
)
from fpnpipe.data.files import file_problem
from fpnpipe.data.intensity import NormalisedImage, normalize_intensity, normalize_through_table

__all__ = ["ImageHeader", "ImageReadError", "image_shape", "read_header", "read_image", "read_mask",
           "read_normalised"]

_GREY_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_GREY_IN_COLOUR_MODES = frozenset({"LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa"})


def _check_file(path: Path) -> None:
    problem = file_problem(path)
    if problem is not None:
        raise ImageReadError(path, f"file {problem}")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def _open_raster(path: Path) -> Image.Image | None:
    """The lazily opened Pillow image, or None if Pillow does not recognise the format."""
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        return None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"unreadable image file ({exc})") from None


def _raster_or_dicom(path: Path) -> Image.Image | None:
    """The opened raster image, or None when the file is to be read as DICOM: it has the DICM preamble,
    or Pillow does not know it (then it is tried as DICOM without a meta header; load_dicom refuses junk)."""
    _check_file(path)
    if has_dicom_preamble(path):
        return None
    return _open_raster(path)


def _raster_array(path: Path, img: Image.Image) -> np.ndarray:
    """(H, W) native-endian numeric array of a single-page grey raster image."""
    with img:
        pages = getattr(img, "n_frames", 1)
        if pages > 1:
            raise ImageReadError(path, f"multi-page image ({pages} pages); only single images are read")
        if img.width == 0 or img.height == 0:
            raise ImageReadError(path, f"zero-size image ({img.height} x {img.width})")
        try:
            if img.mode in _GREY_MODES:
                arr = np.asarray(img)
            elif img.mode in _GREY_IN_COLOUR_MODES:
                arr = _grey_from_colour(path, np.asarray(img.convert("RGBA")), img.mode)
            else:
                raise ImageReadError(path, f"colour image (mode {img.mode}); only grey-scale images are read")
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError(path, f"truncated or unreadable image file ({exc})") from None
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _grey_from_colour(path: Path, rgba: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) uint8 from (H, W, 4) RGBA if it is grey in disguise (R = G = B, fully opaque)."""
    grey = rgba[..., 0]
    if not (np.array_equal(grey, rgba[..., 1]) and np.array_equal(grey, rgba[..., 2])):
        raise ImageReadError(path, f"colour image (mode {mode}); only grey-scale images are read")
    if not np.all(rgba[..., 3] == 255):
        raise ImageReadError(path, f"image has transparent pixels (mode {mode}); only opaque grey images are read")
    return grey


def read_image(path: str | Path, *, voi_window: bool = False) -> np.ndarray:
    """(H, W) float32 pixels in presentation space (higher = denser / brighter).

    DICOM: Modality LUT applied, MONOCHROME1 inverted, VOI LUT / window applied only if `voi_window`.
    Raster: the stored grey values. Raises ImageReadError with a short reason.
    """
    path = Path(path)
    img = _raster_or_dicom(path)
    if img is None:
        return read_dicom_image(path, voi_window=voi_window)
    return _raster_array(path, img).astype(np.float32, copy=False)


def read_normalised(
    path: str | Path, *, voi_window: bool, percentiles: tuple[float, float]
) -> np.ndarray | NormalisedImage:
    """normalize_intensity(read_image(path), percentiles), bit for bit; for a DICOM as a NormalisedImage:
    its normalisation folded into its lookup table and applied only to the pixels read (the crops), so
    that preprocessing a mammogram costs little more than decoding it (bench/preprocess.py)."""
    path = Path(path)
    img = _raster_or_dicom(path)
    if img is None:
        return read_dicom_normalised(path, lambda index, table: normalize_through_table(index, table, percentiles),
                                     voi_window=voi_window)
    return normalize_intensity(_raster_array(path, img).astype(np.float32, copy=False), percentiles)


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) bool mask, True where the stored pixel value is nonzero.

    DICOM masks are read as raw stored values (no Modality LUT, no inversion). The file must be
    two-level: at most two distinct values, one of them 0 when there are two; otherwise ImageReadError.
    """
    path = Path(path)
    img = _raster_or_dicom(path)
    values = dicom_stored(path) if img is None else _raster_array(path, img)
    lo, hi = values.min(), values.max()
    # Two-level test in one pass each, no sort; count the levels only to word the refusal.
    if not np.all((values == lo) | (values == hi)):
        levels = len(np.unique(values))
        raise ImageReadError(path, f"mask is not binary ({levels} distinct values)")
    if lo != hi and lo != 0 and hi != 0:
        raise ImageReadError(path, f"mask levels are {lo} and {hi}; one of the two must be 0 (outside)")
    return values != 0


def read_header(path: str | Path) -> ImageHeader:
    """Header facts (shape, photometric, pixel spacing, laterality) without decoding the pixels."""
    path = Path(path)
    img = _raster_or_dicom(path)
    if img is None:
        return dicom_header(path)
    with img:
        return ImageHeader(shape=(img.height, img.width), photometric="MONOCHROME2")


def image_shape(path: str | Path) -> tuple[int, int]:
    """(rows, cols) of an image or mask file, from its header only. Raises ImageReadError."""
    return read_header(path).shape
