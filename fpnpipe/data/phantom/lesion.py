"""Masses: a smooth irregular body (2-D Gaussian random sphere) with a margin that depends on the class.

- circumscribed: sharp, well-defined edge;
- indistinct: the edge blurred over 10-30% of the radius, its position and brightness modulated by
  a tissue-like random field so it blends into the surroundings;
- spiculated: a moderately sharp body plus 8-40 thin, tapering, branching radial spicules 1-3 radii long.
Anchors: FDA VICTRE breastMass and de Sisternes et al. 2015 (see reference/data-sources.md).
Coordinates of a Mass are pixels relative to its centre (x = column, y = row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import erfc

from fpnpipe.data.phantom.spicules import draw_spicules, spicule_tree
from fpnpipe.data.phantom.texture import skewed_draw

MARGINS: tuple[str, ...] = ("circumscribed", "indistinct", "spiculated")
FOURIER_ORDERS = np.arange(2, 9)
"""Harmonics of the log-radius (order 1 would only shift the centre)."""


@dataclass(frozen=True)
class Mass:
    """One lesion's geometry and appearance, independent of where it is placed.

    radius: mean body radius (px); contrast: added presentation intensity at the body's centre;
    log_radius: (K, 2) cosine/sine coefficients of log r(theta) for FOURIER_ORDERS;
    edge_sigma: Gaussian width of the body edge (px); blend: strength of the edge's tissue modulation
    (0 = none); spicules: (P, 4) rows [x, y, width, amplitude] (empty unless spiculated).
    """

    margin: str
    radius: float
    contrast: float
    log_radius: np.ndarray
    edge_sigma: float
    blend: float
    spicules: np.ndarray

    def body_radius(self, theta: np.ndarray) -> np.ndarray:
        """Body radius r(theta) in px for angles `theta` (any shape)."""
        return body_radius(self.radius, self.log_radius, theta)

    def extent(self) -> float:
        """Largest distance (px) from the centre reached by the body or a spicule, before edge blur."""
        theta = np.linspace(0.0, 2 * np.pi, 360, endpoint=False)
        reach = float(self.body_radius(theta).max())
        if len(self.spicules):
            reach = max(reach, float(np.hypot(self.spicules[:, 0], self.spicules[:, 1]).max()))
        return reach


def body_radius(radius: float, log_radius: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """r(theta) = radius * exp(sum_k a_k cos(k theta) + b_k sin(k theta)) for angles `theta` (any shape);
    `log_radius` is (K, 2) [a_k, b_k] for k in FOURIER_ORDERS."""
    orders = FOURIER_ORDERS.reshape((-1,) + (1,) * np.ndim(theta))
    log_r = (log_radius[:, 0].reshape(orders.shape) * np.cos(orders * theta)).sum(0)
    log_r = log_r + (log_radius[:, 1].reshape(orders.shape) * np.sin(orders * theta)).sum(0)
    return radius * np.exp(log_r)


def draw_mass(
    margin: str,
    radius_range: tuple[float, float],
    contrast_range: tuple[float, float],
    difficulty: float,
    rng: np.random.Generator,
) -> Mass:
    """Draw a mass of class `margin`. `difficulty` in [0, 1] skews each draw from its easy end (0) to
    its hard end (1): lower contrast, milder indistinct blur, sharper spiculated body, fewer, shorter
    and fainter spicules; 0.5 draws uniformly over each range."""
    if margin not in MARGINS:
        raise ValueError(f"unknown margin {margin!r}; expected one of {', '.join(MARGINS)}")
    radius = float(rng.uniform(*radius_range))
    contrast = skewed_draw(rng, contrast_range[1], contrast_range[0], difficulty)
    roughness = {"circumscribed": 0.08, "indistinct": 0.13, "spiculated": 0.15}[margin] * rng.uniform(0.7, 1.3)
    # Gaussian random sphere (Muinonen et al. 1996) in 2-D: log r(theta) is a Gaussian process on the
    # circle; here its Fourier harmonics have variances ~ k^-3, so the outline is smooth and lobulated.
    weights = FOURIER_ORDERS.astype(float) ** -3.0
    scale = roughness * np.sqrt(weights / weights.sum())
    log_radius = rng.normal(0.0, 1.0, (len(FOURIER_ORDERS), 2)) * scale[:, None]

    spicules = np.zeros((0, 4), dtype=np.float32)
    blend = 0.0
    if margin == "circumscribed":
        edge_sigma = max(0.3, skewed_draw(rng, 0.01, 0.03, difficulty) * radius)
    elif margin == "indistinct":
        # Blurred over 10-30% of the radius: the edge's Gaussian blur has that sigma.
        edge_sigma = max(1.0, skewed_draw(rng, 0.30, 0.10, difficulty) * radius)
        blend = skewed_draw(rng, 0.8, 0.4, difficulty)
    else:
        edge_sigma = max(0.5, skewed_draw(rng, 0.03, 0.06, difficulty) * radius)
        spicules = _draw_spicules(radius, contrast, log_radius, difficulty, rng)
    return Mass(margin, radius, contrast, log_radius.astype(np.float32), float(edge_sigma), float(blend), spicules)


def _draw_spicules(
    radius: float, contrast: float, log_radius: np.ndarray, difficulty: float, rng: np.random.Generator
) -> np.ndarray:
    """(P, 4) spicule samples for a body of mean `radius` with harmonics `log_radius`."""
    count = int(round(skewed_draw(rng, 40, 8, difficulty)))
    strength = skewed_draw(rng, 1.4, 0.7, difficulty)
    max_length = skewed_draw(rng, 3.0, 1.5, difficulty)
    base_width = max(2.0, radius * rng.uniform(0.12, 0.2))
    # Evenly spread directions with jitter, so spicules radiate all round the body.
    angles = (np.arange(count) + rng.uniform(-0.35, 0.35, count)) * (2 * np.pi / count) + rng.uniform(0, 2 * np.pi)
    parts = []
    for angle in angles:
        start_r = 0.85 * float(body_radius(radius, log_radius, np.asarray(angle)))
        start = (start_r * np.cos(angle), start_r * np.sin(angle))
        length = radius * rng.uniform(1.0, max_length)
        amp = contrast * strength * rng.uniform(0.7, 1.1)
        width = base_width * rng.uniform(0.7, 1.2)
        parts.append(spicule_tree(start, angle + rng.normal(0.0, 0.12), length, width, amp, rng))
    return np.concatenate(parts, axis=0).astype(np.float32)


@dataclass(frozen=True)
class MassImage:
    """A rendered mass on a local patch whose pixel (0, 0) is image pixel (top, left).

    intensity: (h, w) float32 presentation intensity to add; roi: (h, w) bool lesion extent (body where
    r <= r(theta), spicules where they cover a pixel)."""

    top: int
    left: int
    intensity: np.ndarray
    roi: np.ndarray


def render_mass(mass: Mass, centre: tuple[float, float], rng: np.random.Generator) -> MassImage:
    """Render `mass` centred at image coordinates `centre` = (x, y)."""
    half = int(np.ceil(mass.extent() + 4.0 * mass.edge_sigma + 3.0))
    left, top = int(np.floor(centre[0])) - half, int(np.floor(centre[1])) - half
    size = 2 * half + 1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx + left - centre[0], yy + top - centre[1]
    rho = np.hypot(dx, dy)
    edge_r = mass.body_radius(np.arctan2(dy, dx)).astype(np.float32)
    roi = rho <= edge_r

    shift = np.zeros_like(rho)
    texture = np.zeros_like(rho)
    if mass.blend > 0:
        # Blending into tissue: the edge position wanders and the rim's brightness is mottled.
        shift = mass.blend * 1.5 * mass.edge_sigma * _smooth_noise(size, max(1.5, 0.15 * mass.radius), rng)
        texture = mass.blend * 0.5 * _smooth_noise(size, max(1.0, 0.06 * mass.radius), rng)
    signed = rho - (edge_r + shift)
    edge = 0.5 * erfc(signed / (np.sqrt(2.0) * mass.edge_sigma))
    dome = 0.7 + 0.3 * np.sqrt(np.clip(1.0 - (rho / edge_r) ** 2, 0.0, 1.0))
    rim = np.clip(1.0 + texture * (1.0 - edge) * 2.0, 0.0, 2.0)
    intensity = mass.contrast * dome * edge * rim

    if len(mass.spicules):
        drawn = draw_spicules(mass.spicules, (size, size), (left - centre[0], top - centre[1]))
        intensity = np.maximum(intensity, drawn[0])
        roi |= drawn[1] > 0.25
    return MassImage(top=top, left=left, intensity=intensity.astype(np.float32), roi=roi)


def _smooth_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(size, size) Gaussian-smoothed white noise rescaled to std 1."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="reflect")
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)
