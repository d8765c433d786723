"""Activation maps: upsampling to the crop, the 95th-percentile high-activation region and box, and the
interpretability metrics on them (IAIA-BL's activation precision with its chance level, and the share of the
crop a map activates on). Pure array functions, used by training (projection records), evaluation and
explanations alike.

Conventions. An activation map is upsampled to the crop size S x S before any of these metrics. The "kept"
pixels of a map are those at or above the map's own `percentile`-th percentile, computed by numpy's default
(linear interpolation) percentile, as IAIA-BL does. Because of "at or above", a constant map keeps every
pixel, and a map whose values above the threshold are few keeps every pixel tied with the threshold too.
Boxes are (x0, y0, x1, y1) in crop pixels with x = column, y = row, x1 and y1 exclusive: the box's pixels
are mask[y0:y1, x0:x1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fpnpipe.classes import CLASSES, FPN_LEVELS

DEFAULT_PERCENTILE: float = 95.0


def upsample_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of activation maps (..., h, w) to (..., H, W) (size = S gives S x S), on the
    maps' device, in their floating dtype (float32 for others). The one place where a map is brought to
    crop size: the fine-annotation loss, projection records, metrics and explanations all call it.

    align_corners=False: pixel centres are aligned, not the corners.
    """
    if maps.ndim < 2:
        raise ValueError(f"activation maps must have shape (..., h, w), got {tuple(maps.shape)}")
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    maps = maps if maps.is_floating_point() else maps.float()
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    up = F.interpolate(flat, size=out_size, mode="bilinear", align_corners=False)
    return up.reshape(*maps.shape[:-2], *out_size)


def upsample_activation_batch(acts: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """upsample_maps for numpy maps (N, h, w) -> (N, H, W), computed in float64."""
    if np.ndim(acts) != 3:
        raise ValueError(f"activation maps must have shape (N, h, w), got {np.shape(acts)}")
    return upsample_maps(torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float64)), size).numpy()


def upsample_activation(act: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """One map (h, w) -> (H, W); see upsample_activation_batch."""
    return upsample_activation_batch(np.asarray(act)[None], size)[0]


def _check_maps(acts: np.ndarray, percentile: float) -> np.ndarray:
    """Validate maps (N, S, S) and the percentile; return the maps as float64."""
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 3 or acts.shape[1] == 0 or acts.shape[2] == 0:
        raise ValueError(f"activation maps must have shape (N, H, W) with H, W > 0, got {acts.shape}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    if not np.all(np.isfinite(acts)):
        raise ValueError("activation maps contain NaN or infinite values")
    return acts


def high_activation_mask_batch(acts: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """(N, H, W) maps -> (N, H, W) bool: pixels at or above each map's own percentile (never empty)."""
    acts = _check_maps(acts, percentile)
    thresholds = np.percentile(acts.reshape(acts.shape[0], -1), percentile, axis=1)
    return acts >= thresholds[:, None, None]


def high_activation_mask(act: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """One map (H, W) -> (H, W) bool; see high_activation_mask_batch."""
    return high_activation_mask_batch(np.asarray(act)[None], percentile)[0]


def high_activation_box_batch(acts: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> np.ndarray:
    """(N, H, W) maps -> (N, 4) int64 boxes (x0, y0, x1, y1), x = column, y = row, x1 / y1 exclusive.

    The smallest box holding every kept pixel; separate hot spots give one box around all of them.
    """
    mask = high_activation_mask_batch(acts, percentile)
    rows = np.asarray(mask.any(axis=2))  # (N, H): rows holding a kept pixel
    cols = np.asarray(mask.any(axis=1))  # (N, W)
    y0 = rows.argmax(axis=1)
    y1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def high_activation_box(act: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> tuple[int, int, int, int]:
    """One map (H, W) -> (x0, y0, x1, y1); see high_activation_box_batch."""
    x0, y0, x1, y1 = high_activation_box_batch(np.asarray(act)[None], percentile)[0].tolist()
    return (x0, y0, x1, y1)


def activation_precision_batch(
    acts: np.ndarray, relevant: np.ndarray, percentile: float = DEFAULT_PERCENTILE
) -> np.ndarray:
    """(N,) activation precision: kept pixels inside the relevant region / kept pixels (IAIA-BL).

    acts (N, H, W) maps already at crop size; relevant (N, H, W) bool (or 0/1), True = relevant region.
    An empty relevant region gives 0.
    """
    mask = high_activation_mask_batch(acts, percentile)
    relevant = np.asarray(relevant).astype(bool)
    if relevant.shape != mask.shape:
        raise ValueError(f"relevant must have the maps' shape {mask.shape}, got {relevant.shape}")
    inside = np.sum(mask & relevant, axis=(1, 2))
    return inside / np.sum(mask, axis=(1, 2))


def activation_precision(act: np.ndarray, relevant: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> float:
    """One map (H, W) and region (H, W) -> precision; see activation_precision_batch."""
    return float(activation_precision_batch(np.asarray(act)[None], np.asarray(relevant)[None], percentile)[0])


def relevant_share(relevant: np.ndarray) -> np.ndarray:
    """(N,) share of each crop's pixels inside its relevant region, relevant (N, H, W) bool or 0/1.

    This is the chance level of activation precision: a map whose kept pixels fell at random over the crop
    would score it on average."""
    relevant = np.asarray(relevant).astype(bool)
    if relevant.ndim != 3:
        raise ValueError(f"relevant must have shape (N, H, W), got {relevant.shape}")
    return relevant.mean(axis=(1, 2))


def activation_area_batch(acts: np.ndarray, relative: float = 0.5) -> np.ndarray:
    """(N,) fraction of the crop where each map (N, H, W) reaches `relative` of its own range:
    (a - min) / (max - min) >= relative (the half-maximum area by default); 1 for a constant map.

    This, not the share of pixels above the 95th percentile (about 5% by construction at every level),
    measures how widely a prototype activates: a coarse FPN level upsampled to the crop spreads its peak
    over many pixels, a fine level keeps it narrow."""
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 3 or not np.isfinite(acts).all():
        raise ValueError(f"maps must be a finite (N, H, W) array, got shape {acts.shape}")
    if not 0 < relative <= 1:
        raise ValueError(f"relative must lie in (0, 1], got {relative}")
    lo = acts.min(axis=(1, 2), keepdims=True)
    span = acts.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.divide(acts - lo, span, out=np.ones_like(acts), where=span > 0)
    return (scaled >= relative).mean(axis=(1, 2))


def activation_area(act: np.ndarray, relative: float = 0.5) -> float:
    """One map (H, W) -> area fraction; see activation_area_batch."""
    return float(activation_area_batch(np.asarray(act)[None], relative)[0])


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _check_groups(values: np.ndarray, *groups: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or any(np.shape(g) != values.shape for g in groups):
        raise ValueError(f"values and their groups must be 1-D of one length, got {values.shape} and "
                         f"{[np.shape(g) for g in groups]}")
    return values


def summarise_by_level(values: np.ndarray, levels: np.ndarray) -> dict[str, float | None]:
    """{"average", "level_2", ..., "level_5"}: means of per-(image, prototype) values (M,) overall and per
    FPN level of the pair's prototype, levels (M,) int in FPN_LEVELS; None where no pair falls in a group."""
    values = _check_groups(values, levels)
    levels = np.asarray(levels)
    unknown = set(levels.tolist()) - set(FPN_LEVELS)
    if unknown:
        raise ValueError(f"unknown FPN levels {sorted(unknown)}; expected some of {FPN_LEVELS}")
    out: dict[str, float | None] = {"average": _mean_or_none(values)}
    out.update({f"level_{level}": _mean_or_none(values[levels == level]) for level in FPN_LEVELS})
    return out


def summarise_by_class(values: np.ndarray, classes: np.ndarray) -> dict[str, float | None]:
    """{class name: mean} of per-(image, prototype) values (M,) by the image's class (M,) int, every class
    in CLASSES order; None where no pair falls in a class."""
    values = _check_groups(values, classes)
    classes = np.asarray(classes)
    return {name: _mean_or_none(values[classes == c]) for c, name in enumerate(CLASSES)}
