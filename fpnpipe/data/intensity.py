"""Intensity normalisation shared by lesion crops, negative patches and single-image explanations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# Percentiles are estimated on a regular subsample: exact enough, and cheap on a 4.5k x 3k mammogram.
_MAX_SAMPLES = 1 << 20


class ConstantImageError(ValueError):
    """An image whose low and high intensity percentiles coincide: it carries no usable contrast."""


def _step(shape: tuple[int, ...]) -> int:
    """Stride of the regular subsample the percentiles are estimated on."""
    return max(1, int(np.ceil(np.sqrt(int(np.prod(shape)) / _MAX_SAMPLES))))


def _window(sample: np.ndarray, percentiles: tuple[float, float], constant: Callable[[], bool]) -> tuple[float, float]:
    """(low percentile, high - low) of the subsample; `constant()`: whether the whole image is one value
    (asked only to word the refusal)."""
    lo, hi = np.percentile(sample, percentiles)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("image contains non-finite values")
    scale = float(hi - lo)
    if scale <= 0:
        what = "constant image" if constant() else "nearly constant image"
        raise ConstantImageError(
            f"{what}: its {percentiles[0]:g} and {percentiles[1]:g} intensity percentiles are both {float(lo):g} "
            "(e.g. RescaleSlope 0 or a blank export), so it has no contrast to normalise"
        )
    return lo, scale


def _scaled(values: np.ndarray, lo: float, scale: float) -> np.ndarray:
    out = np.asarray(values, dtype=np.float32) - np.float32(lo)
    out *= np.float32(1.0 / scale)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def normalize_intensity(image: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map a presentation-space image (H, W) to [0, 1] float32 by its own low / high percentiles.

    The same image-level mapping is applied to every crop of an image, so lesion crops and negative
    patches of one image share one intensity scale. Raises ConstantImageError when the two percentiles
    are equal (a constant image, e.g. RescaleSlope 0, or one almost entirely a single value), and
    ValueError for non-finite values.
    """
    step = _step(image.shape)
    sample = image[::step, ::step]
    lo, scale = _window(sample, percentiles, constant=lambda: float(image.min()) == float(image.max()))
    return _scaled(image, lo, scale)


class NormalisedImage:
    """An (H, W) float32 image in [0, 1] computed only where it is read: table[index[key]] for an index
    array and a table of normalised values. Crops read a few regions of a mammogram, so the lookup over
    its whole 10+ million pixels is never made; np.asarray gives the whole image."""

    dtype = np.dtype(np.float32)

    def __init__(self, index: np.ndarray, table: np.ndarray) -> None:
        self.index, self.table = index, table

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.index.shape)

    @property
    def ndim(self) -> int:
        return self.index.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.take(self.table, self.index[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = np.take(self.table, self.index)
        return full if dtype is None else full.astype(dtype)


def normalize_through_table(
    index: np.ndarray, table: np.ndarray, percentiles: tuple[float, float]
) -> NormalisedImage:
    """normalize_intensity(table[index]) -- the same float32 values, as a NormalisedImage -- without
    building table[index]: the percentiles come from the table looked up on the subsample, and the
    normalisation is applied to the table (at most 65,536 entries) instead of the pixels.

    index: (H, W) non-negative integers into table (L,) float32 presentation values (a DICOM LUT)."""
    step = _step(index.shape)
    # The subsample's values sorted, from a histogram of its indices: the same multiset as
    # table[index[::step, ::step]], hence the same percentiles, without a gather over the image.
    counts = np.bincount(index[::step, ::step].ravel(), minlength=len(table))
    order = np.argsort(table, kind="stable")
    sample = np.repeat(table[order], counts[order])
    present = np.zeros(len(table), bool)
    lo, scale = _window(sample, percentiles, constant=lambda: _one_value(index, table, present))
    return NormalisedImage(index, _scaled(table, lo, scale))


def _one_value(index: np.ndarray, table: np.ndarray, present: np.ndarray) -> bool:
    present[index] = True
    values = table[present]
    return float(values.min()) == float(values.max())
