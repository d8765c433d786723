"""Intensity normalisation shared by lesion crops, negative patches and single-image explanations."""

from __future__ import annotations

import numpy as np

# Percentiles are estimated on a regular subsample: exact enough, and cheap on a 4.5k x 3k mammogram.
_MAX_SAMPLES = 1 << 20


class ConstantImageError(ValueError):
    """An image whose low and high intensity percentiles coincide: it carries no usable contrast."""


def normalize_intensity(image: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map a presentation-space image (H, W) to [0, 1] float32 by its own low / high percentiles.

    The same image-level mapping is applied to every crop of an image, so lesion crops and negative
    patches of one image share one intensity scale. Raises ConstantImageError when the two percentiles
    are equal (a constant image, e.g. RescaleSlope 0, or one almost entirely a single value), and
    ValueError for non-finite values.
    """
    step = max(1, int(np.ceil(np.sqrt(image.size / _MAX_SAMPLES))))
    lo, hi = np.percentile(image[::step, ::step], percentiles)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("image contains non-finite values")
    scale = float(hi - lo)
    if scale <= 0:
        what = "constant image" if float(image.min()) == float(image.max()) else "nearly constant image"
        raise ConstantImageError(
            f"{what}: its {percentiles[0]:g} and {percentiles[1]:g} intensity percentiles are both {float(lo):g} "
            "(e.g. RescaleSlope 0 or a blank export), so it has no contrast to normalise"
        )
    out = np.asarray(image, dtype=np.float32) - np.float32(lo)
    out *= np.float32(1.0 / scale)
    np.clip(out, 0.0, 1.0, out=out)
    return out
