"""The imaging chain after the object: detector blur, quantum noise, and quantisation to stored pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

REFERENCE_LEVEL = 0.35
"""Presentation intensity (about that of fat) at which the quantum noise has std = `noise`."""
ATTENUATION = 3.0
"""How fast detected quanta fall as presentation brightness rises (brighter = more attenuating)."""


def detector(image: np.ndarray, blur_sigma: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Blur (H, W) presentation intensities with a Gaussian of `blur_sigma` px, add quantum noise, clip to
    [0, 1]; returns (H, W) float32.

    Quantum noise: detected quanta N ~ exp(-ATTENUATION * p) and the log signal has std 1 / sqrt(N)
    (Poisson statistics), so in presentation units std(p) = noise * exp(ATTENUATION * (p - ref) / 2).
    """
    blurred = ndimage.gaussian_filter(image.astype(np.float32), blur_sigma, mode="nearest")
    std = noise * np.exp(ATTENUATION * (blurred - REFERENCE_LEVEL) / 2.0)
    noisy = blurred + std * rng.standard_normal(blurred.shape).astype(np.float32)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class PixelEncoding:
    """How presentation intensities p in [0, 1] become stored integers in a DICOM file.

    stored = round(p * max_stored) for MONOCHROME2, round((1 - p) * max_stored) for MONOCHROME1
    (high stored value = dark); max_stored = 2^bits_stored - 1. The Modality LUT `rescale` = (slope,
    intercept) maps stored to modality values slope * stored + intercept; None means identity, unwritten.
    """

    photometric: str = "MONOCHROME2"
    bits_stored: int = 16
    rescale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {self.photometric!r}")
        if not 8 <= self.bits_stored <= 16:
            raise ValueError(f"bits_stored must be 8..16, got {self.bits_stored}")
        if self.rescale is not None and self.rescale[0] <= 0:
            raise ValueError(f"rescale slope must be positive, got {self.rescale[0]}")

    @property
    def max_stored(self) -> int:
        return (1 << self.bits_stored) - 1

    def encode(self, presentation: np.ndarray) -> np.ndarray:
        """(H, W) presentation in [0, 1] -> (H, W) uint16 stored values in [0, max_stored]."""
        p = np.clip(presentation, 0.0, 1.0)
        if self.photometric == "MONOCHROME1":
            p = 1.0 - p
        return np.rint(p * self.max_stored).astype(np.uint16)

    def modality_range(self) -> tuple[float, float]:
        """Modality values of stored 0 and stored max_stored."""
        slope, intercept = self.rescale if self.rescale is not None else (1.0, 0.0)
        return intercept, slope * self.max_stored + intercept
