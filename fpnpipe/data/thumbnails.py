"""data/processed/thumbnails.h5: a small grey thumbnail of every accepted source image, with its size and pixel
spacing, written by `preprocess` (which has each image in memory anyway), read by `explain` to show where a
crop lies in its mammogram and to put a millimetre scale bar on it.

Why here and not in explain: explain would otherwise have to find and decode every test image again through
the importer (minutes for full-field DICOMs, and the raw data may not even be on the machine that explains),
and it would depend on `data.*` params and the raw folder. A thumbnail is the normalised image (the same
intensities as the crops) shrunk with area averaging to at most THUMBNAIL_SIDE pixels on its longer side, in
8 bits: about 50 KB per image before compression. Image ids are those of images.json (pseudonyms under
data.pseudonymize); nothing else about the image is stored.

File: datasets `image_id` (M,) str, `pixels` (M, T, T) uint8 (each thumbnail in the top-left corner, zero
elsewhere), `thumbnail_shape` (M, 2) [rows, cols], `source_shape` (M, 2) [rows, cols] of the source image,
`pixel_spacing_mm` (M, 2) [row, col] mm per source pixel, NaN when the file does not state it (PixelSpacing,
else ImagerPixelSpacing, of a DICOM header; raster files state none); attributes `thumbnails_version`, `side`.
Byte-stable like the crops files.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from fpnpipe.atomic import atomic_file

THUMBNAILS_VERSION = 1
THUMBNAIL_SIDE = 256
"""Longer side of a thumbnail, pixels."""
_STR = h5py.string_dtype(encoding="utf-8")


@dataclass(frozen=True)
class Thumbnail:
    """pixels (h, w) uint8, h and w <= THUMBNAIL_SIDE; source_shape (H, W) of the image it shrinks;
    pixel_spacing_mm (row, col) mm per source pixel, or None when unknown."""

    image_id: str
    pixels: np.ndarray
    source_shape: tuple[int, int]
    pixel_spacing_mm: tuple[float, float] | None

    @property
    def scale(self) -> tuple[float, float]:
        """(rows, cols) thumbnail pixels per source pixel."""
        return self.pixels.shape[0] / self.source_shape[0], self.pixels.shape[1] / self.source_shape[1]


def make_thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """(h, w) uint8 of a (H, W) image in [0, 1]: the longer side shrunk to `side` (never enlarged), each
    thumbnail pixel the mean of the source pixels it covers (Pillow's box filter)."""
    if image.ndim != 2 or min(image.shape) == 0:
        raise ValueError(f"image must be (H, W) with H, W > 0, got {image.shape}")
    h, w = image.shape
    factor = min(1.0, side / max(h, w))
    size = (max(1, round(w * factor)), max(1, round(h * factor)))  # Pillow: (width, height)
    shrunk = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize(size, Image.Resampling.BOX)
    return np.round(np.clip(np.asarray(shrunk), 0.0, 1.0) * 255).astype(np.uint8)


def write_thumbnails(path: str | Path, thumbnails: list[Thumbnail], side: int = THUMBNAIL_SIDE) -> None:
    """Write the thumbnails atomically and byte-stably (no timestamps, fixed chunks and compression)."""
    m = len(thumbnails)
    pixels = np.zeros((m, side, side), np.uint8)
    for k, t in enumerate(thumbnails):
        h, w = t.pixels.shape
        if h > side or w > side:
            raise ValueError(f"thumbnail of {t.image_id!r} is {h}x{w}, larger than {side}")
        pixels[k, :h, :w] = t.pixels
    spacing = np.array([t.pixel_spacing_mm if t.pixel_spacing_mm else (math.nan, math.nan) for t in thumbnails],
                       np.float64).reshape(m, 2)
    with atomic_file(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["thumbnails_version"] = THUMBNAILS_VERSION
        f.attrs["side"] = side
        f.create_dataset("image_id", data=np.array([t.image_id for t in thumbnails], dtype=_STR), track_times=False)
        kw = dict(chunks=(1, side, side), compression="gzip", compression_opts=6, shuffle=False) if m else {}
        f.create_dataset("pixels", data=pixels, track_times=False, **kw)
        f.create_dataset("thumbnail_shape", data=np.array([t.pixels.shape for t in thumbnails], np.int64).reshape(m, 2),
                         track_times=False)
        f.create_dataset("source_shape", data=np.array([t.source_shape for t in thumbnails], np.int64).reshape(m, 2),
                         track_times=False)
        f.create_dataset("pixel_spacing_mm", data=spacing, track_times=False)


def read_thumbnails(path: str | Path) -> dict[str, Thumbnail]:
    """image_id -> Thumbnail; ValueError naming the file when it is missing or not a thumbnails file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (run preprocess first)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("thumbnails_version") != THUMBNAILS_VERSION:
                raise ValueError(f"{path}: thumbnails_version {f.attrs.get('thumbnails_version')!r}, this code reads "
                                 f"{THUMBNAILS_VERSION}; rerun preprocess")
            ids = [str(v) for v in f["image_id"].asstr()[()]]
            pixels, shapes = f["pixels"][()], f["thumbnail_shape"][()]
            sources, spacing = f["source_shape"][()], f["pixel_spacing_mm"][()]
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable thumbnails file ({exc})") from None
    out = {}
    for k, image_id in enumerate(ids):
        h, w = (int(v) for v in shapes[k])
        mm = None if not np.all(np.isfinite(spacing[k])) else (float(spacing[k, 0]), float(spacing[k, 1]))
        out[image_id] = Thumbnail(image_id, pixels[k, :h, :w].copy(), (int(sources[k, 0]), int(sources[k, 1])), mm)
    return out


def source_image_id(crop_id: str, known: Collection[str]) -> str | None:
    """The id of the image a crop was cut from: the crop's own id when it names an image (one lesion per image),
    else the part before its last '#' (preprocess names the lesions of a multi-lesion image '<image>#<k>',
    negatives its patches '<image>#neg<k>'); None when neither is a known image."""
    if crop_id in known:
        return crop_id
    stem, sep, _ = crop_id.rpartition("#")
    return stem if sep and stem in known else None
