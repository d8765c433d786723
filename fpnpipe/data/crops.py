"""Crop geometry: the square context box around a lesion, border-padded extraction, antialiased resizing,
and the margin band used as the fine annotation."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from fpnpipe.data.intensity import NormalisedImage
from fpnpipe.data.records import Box, Circle

IntBox = tuple[int, int, int, int]
"""[x0, y0, x1, y1] integer pixel box, x1 / y1 exclusive."""


def mask_box(mask: np.ndarray) -> IntBox:
    """Tight box of the True pixels of a (H, W) mask; ValueError if the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("ROI mask is empty")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def circle_box(circle: Circle) -> Box:
    cx, cy, r = circle
    return cx - r, cy - r, cx + r, cy + r


def box_inside(box: Box, shape: tuple[int, int]) -> bool:
    """True if the box overlaps the (H, W) image at all (a box wholly outside is unusable)."""
    x0, y0, x1, y1 = box
    return x1 > 0 and y1 > 0 and x0 < shape[1] and y0 < shape[0]


def context_box(box: Box, context: float) -> IntBox:
    """Square integer box centred on `box`, side = ceil(context x the box's longer side) (at least 2 px)."""
    x0, y0, x1, y1 = box
    side = max(2, math.ceil(context * max(x1 - x0, y1 - y0)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = math.floor(cx - side / 2), math.floor(cy - side / 2)
    return left, top, left + side, top + side


def extract(image: np.ndarray | NormalisedImage, box: IntBox, fill: float = 0.0) -> np.ndarray:
    """The (y1-y0, x1-x0) region of a (H, W) array under `box`; parts outside the image are `fill`."""
    x0, y0, x1, y1 = box
    h, w = image.shape
    out = np.full((y1 - y0, x1 - x0), fill, dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def resize(region: np.ndarray, size: int) -> np.ndarray:
    """Resize a square (s, s) float region to (size, size), bilinear. Pillow widens the filter support by
    the shrink factor, so shrinking is antialiased (every source pixel contributes)."""
    img = Image.fromarray(np.ascontiguousarray(region, dtype=np.float32))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def crop_image(image: np.ndarray | NormalisedImage, box: IntBox, size: int) -> np.ndarray:
    """(size, size) float32 crop of a [0, 1] image under `box`, zero (air) outside the image."""
    return np.clip(resize(extract(image, box, 0.0), size), 0.0, 1.0)


def inside_fraction(box: IntBox, shape: tuple[int, int]) -> float:
    """Share of the box's area that lies inside a (H, W) image (the rest is padding); from geometry only."""
    x0, y0, x1, y1 = box
    inside_w = max(0, min(x1, shape[1]) - max(x0, 0))
    inside_h = max(0, min(y1, shape[0]) - max(y0, 0))
    return inside_w * inside_h / ((x1 - x0) * (y1 - y0))


def shrink_mask(region: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool of a square (s, s) bool region: resized as coverage, kept where >= half covered."""
    return resize(region.astype(np.float32), size) >= 0.5


def crop_mask(mask: np.ndarray, box: IntBox, size: int) -> np.ndarray:
    """(size, size) bool crop of a (H, W) bool mask under `box` (False outside the image)."""
    return shrink_mask(extract(mask, box, False), size)


def disc_mask(shape: tuple[int, int], circle: Circle) -> np.ndarray:
    """(H, W) bool disc of a centre + radius annotation: pixels whose centre lies within the radius."""
    return disc_in_box(circle, (0, 0, shape[1], shape[0]), shape)


def disc_in_box(circle: Circle, box: IntBox, shape: tuple[int, int]) -> np.ndarray:
    """The (y1-y0, x1-x0) part under `box` of the disc of a centre + radius annotation on a (H, W) image:
    pixels whose centre lies within the radius, False outside the image. Only the pixels of the box that
    are inside both the image and the disc's bounding square are evaluated, so memory follows the box,
    never the radius."""
    cx, cy, r = circle
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    # Pixels of the box inside the image and the disc's bounding square.
    left = max(x0, 0, math.floor(cx - r))
    top = max(y0, 0, math.floor(cy - r))
    right = min(x1, shape[1], math.ceil(cx + r) + 1)
    bottom = min(y1, shape[0], math.ceil(cy + r) + 1)
    if right <= left or bottom <= top:
        return out
    dx = np.arange(left, right, dtype=np.float64) + 0.5 - cx
    dy = np.arange(top, bottom, dtype=np.float64) + 0.5 - cy
    out[top - y0 : bottom - y0, left - x0 : right - x0] = dx[None, :] ** 2 + dy[:, None] ** 2 <= r * r
    return out


def margin_band(roi: np.ndarray, half_width: int) -> np.ndarray:
    """(S, S) bool ring of pixels within `half_width` pixels of the ROI boundary, on either side
    (dilation minus erosion by a disc of that radius). The crop border is not a boundary."""
    if not roi.any():
        return np.zeros_like(roi, dtype=bool)
    inside = ndimage.distance_transform_edt(roi)
    outside = ndimage.distance_transform_edt(~roi)
    # Distance to the nearest pixel of the other side: within half_width of the boundary on either side.
    return (roi & (inside <= half_width)) | (~roi & (outside <= half_width))
