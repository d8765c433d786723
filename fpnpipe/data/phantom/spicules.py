"""Spicules of a spiculated mass: thin, tapering, branching radial lines, drawn as sampled centre lines.

A spicule is a list of points [x, y, width, amplitude] along its centre line (mass-centred pixel
coordinates); it is drawn by stamping an anti-aliased disc of the local width at every point.
"""

from __future__ import annotations

import numpy as np

STEP_PX = 0.7
"""Spacing of centre-line samples; below one pixel, so the stamped discs join into a line."""

TIP_WIDTH_PX = 0.8


def spicule_path(
    start: tuple[float, float],
    angle: float,
    length: float,
    base_width: float,
    amplitude: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sample one spicule that starts at `start` heading `angle` (radians) for `length` px, with a
    gently wandering direction; width tapers from `base_width` to a thin tip and amplitude fades by 60%.
    Returns (P, 4) float32 rows [x, y, width, amplitude]."""
    n = max(int(np.ceil(length / STEP_PX)), 2)
    heading = angle + np.cumsum(rng.normal(0.0, 0.035, n))
    x = start[0] + np.concatenate([[0.0], np.cumsum(STEP_PX * np.cos(heading[:-1]))])
    y = start[1] + np.concatenate([[0.0], np.cumsum(STEP_PX * np.sin(heading[:-1]))])
    t = np.linspace(0.0, 1.0, n)
    width = np.maximum(base_width * (1.0 - t), TIP_WIDTH_PX)
    amp = amplitude * (1.0 - 0.6 * t)
    return np.stack([x, y, width, amp], axis=1).astype(np.float32)


def spicule_tree(
    start: tuple[float, float],
    angle: float,
    length: float,
    base_width: float,
    amplitude: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One spicule plus up to two side branches leaving it part-way at 17-34 degrees.
    Returns (P, 4) float32 rows [x, y, width, amplitude] of all its samples."""
    trunk = spicule_path(start, angle, length, base_width, amplitude, rng)
    parts = [trunk]
    n_branches = rng.choice(3, p=[0.45, 0.4, 0.15])
    for _ in range(n_branches):
        at = int(rng.uniform(0.25, 0.6) * (len(trunk) - 1))
        x, y, width, amp = trunk[at]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6)
        remaining = length * (1.0 - at / (len(trunk) - 1))
        direction = np.arctan2(trunk[at + 1, 1] - y, trunk[at + 1, 0] - x) + turn
        branch_len = max(remaining * rng.uniform(0.4, 0.8), 2 * STEP_PX)
        parts.append(spicule_path((float(x), float(y)), direction, branch_len, 0.8 * width, 0.85 * amp, rng))
    return np.concatenate(parts, axis=0)


def draw_spicules(points: np.ndarray, shape: tuple[int, int], origin: tuple[float, float]) -> np.ndarray:
    """Stamp spicule samples (P, 4) [x, y, width, amplitude] onto an (h, w) canvas whose pixel (0, 0)
    has mass-centred coordinates `origin` = (x0, y0). Overlaps keep the maximum, not the sum.

    Returns (2, h, w) float32: [intensity, coverage], coverage in [0, 1] the disc's pixel coverage."""
    h, w = shape
    canvas = np.zeros((2, h * w), dtype=np.float32)
    if len(points) == 0:
        return canvas.reshape(2, h, w)
    px = points[:, 0] - origin[0]
    py = points[:, 1] - origin[1]
    reach = np.ceil(points[:, 2] / 2.0 + 1.0).astype(int)
    for k in np.unique(reach):
        sel = reach == k
        oy, ox = np.mgrid[-k : k + 1, -k : k + 1].reshape(2, 1, -1)
        cx = np.rint(px[sel])[:, None].astype(int) + ox[0]
        cy = np.rint(py[sel])[:, None].astype(int) + oy[0]
        dist = np.hypot(cx - px[sel, None], cy - py[sel, None])
        # Coverage of a pixel by a disc of diameter `width`: a one-pixel linear ramp at the disc edge.
        cover = np.clip(points[sel, 2, None] / 2.0 + 0.5 - dist, 0.0, 1.0)
        valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h) & (cover > 0)
        flat = (cy * w + cx)[valid]
        np.maximum.at(canvas[0], flat, (cover * points[sel, 3, None])[valid])
        np.maximum.at(canvas[1], flat, cover[valid])
    return canvas.reshape(2, h, w)
