"""Training augmentation of a batch of crops and their fine masks, on whatever device the batch is on.

Per sample: horizontal / vertical flip, a 90-degree turn and a small affine (rotation, scale, translation)
are composed into ONE 2x3 matrix, applied by one affine_grid + grid_sample for the whole batch (bilinear for
the image, nearest neighbour for the mask, zeros brought in from outside: air, not relevant); then gamma and
a window level / width jitter on the image only, vectorised.

A sample's random values depend only on (seed, epoch, draw) -- draw = its position in the epoch's order --
through a counter-based generator, so they do not depend on the batch, the rank or the process that
handles it, and drawing them costs a few vectorised integer operations per batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from fpnpipe.config import AugmentParams

N_DRAWS = 10
"""Uniforms per sample: hflip, vflip, turn, angle, shift x, shift y, scale, gamma, level, width."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Steele, Lea & Flood 2014), elementwise on uint64 (wrapping)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_uniforms(seed: int, epoch: int, draws: np.ndarray, n: int = N_DRAWS) -> np.ndarray:
    """(B, n) float64 uniforms in [0, 1), a fixed function of (seed, epoch, draw_b, k): the counter-based
    SplitMix64 stream keyed by (seed, epoch, draw). draws: (B,) non-negative ints."""
    with np.errstate(over="ignore"):
        key = _mix64(np.full(1, seed, np.uint64) * _GOLDEN + np.uint64(1))
        key = _mix64(key ^ (np.uint64(epoch) * _GOLDEN + np.uint64(2)))
        key = _mix64(key ^ (np.asarray(draws, np.uint64) * _GOLDEN + np.uint64(3)))  # (B,)
        counters = (np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN)[None, :]
        bits = _mix64(key[:, None] + counters)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _between(u: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + (high - low) * u


def geometry_active(p: AugmentParams) -> bool:
    return p.hflip or p.vflip or p.rot90 or p.affine_degrees > 0 or p.affine_translate > 0 or p.affine_scale != (1, 1)


def sampling_matrices(p: AugmentParams, u: np.ndarray) -> np.ndarray:
    """(B, 2, 3) float64: for each sample, the map from an output pixel to where it samples the input, in
    affine_grid's normalised coordinates (x = column, y = row, both in [-1, 1]).

    The forward transform is flip, then a turn by k * 90 degrees, then rotation by the angle and scaling
    about the centre, then a shift: T = shift o (s R_angle) o R_90k o F. The sampling map is its inverse."""
    b = u.shape[0]
    fx = np.where(p.hflip & (u[:, 0] < 0.5), -1.0, 1.0)
    fy = np.where(p.vflip & (u[:, 1] < 0.5), -1.0, 1.0)
    k = np.floor(u[:, 2] * 4).astype(np.int64) if p.rot90 else np.zeros(b, np.int64)
    angle = np.deg2rad(_between(u[:, 3], -p.affine_degrees, p.affine_degrees))
    shift = np.stack([_between(u[:, 4], -p.affine_translate, p.affine_translate),
                      _between(u[:, 5], -p.affine_translate, p.affine_translate)], axis=1) * 2.0  # fraction -> [-1,1]
    lo, hi = math.log(p.affine_scale[0]), math.log(p.affine_scale[1])
    scale = np.exp(_between(u[:, 6], lo, hi))
    flip = np.zeros((b, 2, 2))
    flip[:, 0, 0], flip[:, 1, 1] = fx, fy
    quarter = k * (np.pi / 2)
    turn = _rotation(np.round(np.cos(quarter)), np.round(np.sin(quarter)))  # exact 0 / +-1 entries
    rotate = _rotation(np.cos(angle), np.sin(angle)) * scale[:, None, None]
    linear = rotate @ turn @ flip
    inverse = np.linalg.inv(linear)
    offset = -(inverse @ shift[:, :, None])
    return np.concatenate([inverse, offset], axis=2)


def _rotation(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.stack([np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)], axis=-2)


def _on(values: np.ndarray, device: torch.device) -> torch.Tensor:
    """float64 NumPy values as float32 on `device` (cast on the host: not every device has float64)."""
    return torch.from_numpy(values.astype(np.float32)).to(device)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, p: AugmentParams, u: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment images (B, 1, S, S) float in [0, 1] and masks (B, 1, S, S) uint8 together, on their device.

    u: (B, N_DRAWS) uniforms of `sample_uniforms`. Returns (images float32, masks uint8), same shapes."""
    images = images.float()
    if geometry_active(p):
        theta = _on(sampling_matrices(p, u), images.device)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        padding = "reflection" if p.fill == "reflect" else "zeros"
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)
        moved = F.grid_sample(masks.float(), grid, mode="nearest", padding_mode=padding, align_corners=False)
        masks = moved.round().to(torch.uint8)
    column = (images.shape[0], 1, 1, 1)
    if p.gamma != (1.0, 1.0):
        lo, hi = math.log(p.gamma[0]), math.log(p.gamma[1])
        gamma = _on(np.exp(_between(u[:, 7], lo, hi)), images.device).view(column)
        images = images.clamp(0, 1).pow(gamma)
    if p.window_jitter > 0:
        # Window jitter: shift the level and stretch the width by up to +-window_jitter.
        level = _on(_between(u[:, 8], -p.window_jitter, p.window_jitter), images.device).view(column)
        width = _on(1.0 + _between(u[:, 9], -p.window_jitter, p.window_jitter), images.device).view(column)
        images = ((images - 0.5 - level) / width + 0.5).clamp(0, 1)
    return images, masks
