"""Breast anatomy in canonical orientation (chest wall along column 0, nipple pointing right).

The compressed breast is a half-ellipse against the chest wall with a slightly irregular outline; MLO
views reach up into the axilla and show the pectoral muscle in the upper chest-wall corner. Fibroglandular
tissue is thresholded power-law noise, kept away from the subcutaneous fat under the skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpnpipe.data.phantom.texture import power_law_noise


@dataclass(frozen=True)
class BreastGeometry:
    """Masks of one view, all (H, W): `mask` bool breast (pectoral included), `pectoral` bool,
    `skin_distance` float32 distance in pixels from each breast pixel to the skin line (0 outside): a
    first-order estimate, exact near the skin line and a smooth approximation deeper inside."""

    mask: np.ndarray
    pectoral: np.ndarray
    skin_distance: np.ndarray


def breast_outline(shape: tuple[int, int], view: str, rng: np.random.Generator) -> BreastGeometry:
    """Draw a breast outline for `view` ("CC" or "MLO") on an (H, W) = `shape` grid."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    depth = cols * rng.uniform(0.72, 0.9)
    if view == "MLO":
        centre = rows * rng.uniform(0.48, 0.56)
        half_up, half_down = rows * rng.uniform(0.58, 0.7), rows * rng.uniform(0.36, 0.42)
    else:
        centre = rows * rng.uniform(0.46, 0.54)
        half_up = half_down = rows * rng.uniform(0.36, 0.45)
    half = np.where(y < centre, half_up, half_down).astype(np.float32)
    u, v = x / depth, (y - centre) / half
    radius = np.hypot(u, v)
    # A few low-order Fourier terms make each outline a little different from a perfect ellipse; they are
    # tabulated over the angle and interpolated, which is much cheaper than evaluating them per pixel.
    table_phi = np.linspace(-np.pi, np.pi, 721)
    wobble = np.ones_like(table_phi)
    for order in (2, 3, 4, 5):
        wobble += rng.normal(0.0, 0.02 / order) * np.cos(order * table_phi + rng.uniform(0, 2 * np.pi))
    level = 1.0 - radius / np.interp(np.arctan2(v, u), table_phi, wobble).astype(np.float32)
    mask = level >= 0
    # Distance to the skin line to first order, level / |grad level|: exact at the outline, where the
    # skin and the thickness fall-off need it, and sub-pixel, so the outline comes out anti-aliased.
    gy, gx = np.gradient(level)
    distance = np.where(mask, level / np.maximum(np.hypot(gx, gy), 1e-6), 0.0).astype(np.float32)

    pectoral = np.zeros_like(mask)
    if view == "MLO":
        width, height = cols * rng.uniform(0.22, 0.38), rows * rng.uniform(0.45, 0.7)
        bow = rng.uniform(1.0, 1.4)  # > 1: the muscle edge bows outwards, as on real MLO views
        pectoral = ((x / width) ** bow + (y / height) ** bow <= 1.0) & mask
    return BreastGeometry(mask=mask, pectoral=pectoral, skin_distance=distance)


def thickness_profile(skin_distance: np.ndarray, rim_px: float) -> np.ndarray:
    """Relative compressed thickness (H, W) in [0, 1]: a rounded rim of width `rim_px` at the skin line.

    The rim is a quarter circle in cross-section: t(d) = sqrt(1 - (1 - d / rim)^2) for d < rim.
    """
    s = np.clip(skin_distance / rim_px, 0.0, 1.0)
    return np.sqrt(1.0 - (1.0 - s) ** 2).astype(np.float32)


def fibroglandular(
    breast: BreastGeometry,
    beta: float,
    density: float,
    rng: np.random.Generator,
    *,
    anisotropy: float,
    angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense-tissue fraction map and the texture field behind it, both (H, W) float32.

    `density` is the fibroglandular fraction of the breast area (0..1). Returns (tissue in [0, 1], noise
    with mean 0 and std 1). Tissue avoids the subcutaneous layer near the skin and the pectoral muscle.
    """
    rows, cols = breast.mask.shape
    noise = power_law_noise((rows, cols), beta, rng, anisotropy=anisotropy, angle=angle)
    inner = np.clip(breast.skin_distance / (0.16 * cols), 0.0, 1.0)
    score = noise + 2.0 * (inner - 1.0)
    score[breast.pectoral] -= 10.0
    inside = breast.mask & ~breast.pectoral
    if not inside.any():
        return np.zeros_like(noise), noise
    threshold = np.quantile(score[inside], 1.0 - density)
    softness = 0.35
    tissue = 1.0 / (1.0 + np.exp(-(score - threshold) / softness))
    tissue[~breast.mask] = 0.0
    return tissue.astype(np.float32), noise
