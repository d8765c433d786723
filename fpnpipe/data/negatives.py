"""Lesion-free tissue patches (the negative class): inside the breast, away from every lesion."""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from fpnpipe.classes import NEGATIVE_INDEX
from fpnpipe.config import NegativesParams
from fpnpipe.data.crops import IntBox, crop_image
from fpnpipe.data.image_table import ImageEntry
from fpnpipe.data.images import ImageReadError, read_image
from fpnpipe.data.intensity import normalize_intensity
from fpnpipe.data.schema import CropSet
from fpnpipe.parallel import map_progress

_MASK_MAX_SIDE = 1024  # the breast mask is computed on a subsampled image no larger than this
_MAX_OVERLAP_IOU = 0.25  # patches of one image may overlap this much at most


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Threshold maximising the between-class variance of a histogram (Otsu, 1979)."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])


def breast_mask(image: np.ndarray, skin_margin_px: int) -> tuple[np.ndarray, int]:
    """Interior of the breast on a subsampled grid: (h, w) bool mask and the subsampling step f
    (mask[i, j] describes image pixel (i*f, j*f)). Largest bright component, holes filled, eroded by
    `skin_margin_px` so the skin line and the air boundary are excluded."""
    f = max(1, math.ceil(max(image.shape) / _MASK_MAX_SIDE))
    small = image[::f, ::f]
    tissue = small > otsu_threshold(small)
    labels, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros_like(tissue), f
    sizes = ndimage.sum_labels(tissue, labels, index=np.arange(1, n + 1))
    mask = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    radius = skin_margin_px / f
    if radius > 0:
        mask = ndimage.distance_transform_edt(mask) > radius
    return mask, f


def box_distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Euclidean gap between two [x0, y0, x1, y1] boxes (0 if they touch or overlap)."""
    dx = max(0.0, b[0] - a[2], a[0] - b[2])
    dy = max(0.0, b[1] - a[3], a[1] - b[3])
    return math.hypot(dx, dy)


def _iou(a: IntBox, b: IntBox) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@dataclass(frozen=True)
class NegativeResult:
    crops: CropSet
    wanted: int
    note: str | None
    """Why fewer patches than wanted were taken (or the image was skipped), else None."""


def sample_boxes(
    mask: np.ndarray,
    step: int,
    shape: tuple[int, int],
    lesion_boxes: tuple[tuple[float, float, float, float], ...],
    sides: np.ndarray,
    count: int,
    params: NegativesParams,
    rng: np.random.Generator,
) -> list[IntBox]:
    """Up to `count` square boxes fully inside the image, at least `min_breast_fraction` inside the breast
    interior `mask`, at least `min_distance_px` from every lesion box, overlapping each other little.
    Side lengths are drawn from `sides` (source pixels), so patches have the scale of the lesion crops."""
    h, w = shape
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys, xs = np.nonzero(mask)
    boxes: list[IntBox] = []
    if ys.size == 0:
        return boxes
    for _ in range(params.max_attempts):
        if len(boxes) == count:
            break
        side = int(min(rng.choice(sides), h, w))
        i = int(rng.integers(ys.size))
        cy, cx = ys[i] * step, xs[i] * step
        x0 = int(np.clip(cx - side // 2, 0, w - side))
        y0 = int(np.clip(cy - side // 2, 0, h - side))
        box = (x0, y0, x0 + side, y0 + side)
        # Fraction of the box inside the breast interior, on the subsampled grid (summed-area table).
        r0, c0 = y0 // step, x0 // step
        r1, c1 = max(r0 + 1, -(-box[3] // step)), max(c0 + 1, -(-box[2] // step))
        r1, c1 = min(r1, mask.shape[0]), min(c1, mask.shape[1])
        inside = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
        if inside < params.min_breast_fraction * (r1 - r0) * (c1 - c0):
            continue
        if any(box_distance(box, lb) < params.min_distance_px for lb in lesion_boxes):
            continue
        if any(_iou(box, b) > _MAX_OVERLAP_IOU for b in boxes):
            continue
        boxes.append(box)
    return boxes


@dataclass(frozen=True)
class NegativeSource:
    """An image of the table and its file, found again through the manifest row that names it (None when
    that row no longer resolves to a file)."""

    entry: ImageEntry
    image_path: Path | None


def locate(entries: list[ImageEntry], paths: dict[tuple[str, int], Path]) -> list[NegativeSource]:
    """Each entry with its file from {(source, row): image file} (see fpnpipe.data.sources.image_paths)."""
    return [NegativeSource(e, paths.get((e.source, e.row))) for e in entries]


def negatives_for_image(
    source: NegativeSource,
    sides: np.ndarray,
    params: NegativesParams,
    crop_size: int,
    seed: int,
    voi_window: bool,
    percentiles: tuple[float, float],
) -> NegativeResult:
    """Negative patches from one image, seeded by (seed, image_id) so the result does not depend on
    which worker runs it or in what order."""
    entry = source.entry
    wanted = params.per_lesion_image if entry.lesion_boxes else params.per_normal_image
    empty = CropSet.empty(crop_size)
    if wanted == 0:
        return NegativeResult(empty, 0, None)
    if not entry.all_lesions_known:
        return NegativeResult(empty, wanted, "a lesion row of this image was rejected, so its extent is unknown")
    if source.image_path is None:
        return NegativeResult(empty, wanted, f"{entry.source} row {entry.row} no longer names a readable image; "
                                             "rerun preprocess")
    try:
        image = normalize_intensity(read_image(source.image_path, voi_window=voi_window), percentiles)
    except (ImageReadError, ValueError) as exc:
        return NegativeResult(empty, wanted, f"unreadable: {getattr(exc, 'reason', None) or exc}")
    mask, step = breast_mask(image, params.skin_margin_px)
    rng = np.random.default_rng([seed, zlib.crc32(entry.image_id.encode())])
    boxes = sample_boxes(mask, step, image.shape, entry.lesion_boxes, sides, wanted, params, rng)
    note = None if len(boxes) == wanted else f"found {len(boxes)} of {wanted} patches in {params.max_attempts} attempts"
    if not boxes:
        return NegativeResult(empty, wanted, note)
    n, s = len(boxes), crop_size
    crops = CropSet(
        images=np.stack([crop_image(image, b, s) for b in boxes]),
        fine=np.zeros((n, s, s), np.uint8),
        has_fine=np.ones(n, bool),  # annotated: nothing in a negative patch is relevant
        roi=np.zeros((n, s, s), np.uint8),
        label=np.full(n, NEGATIVE_INDEX, np.int64),
        split=np.array([entry.split] * n, dtype=object),
        patient_id=np.array([entry.patient_id] * n, dtype=object),
        image_id=np.array([f"{entry.image_id}#neg{k}" for k in range(1, n + 1)], dtype=object),
        source_box=np.array(boxes, np.float32),
    )
    return NegativeResult(crops, wanted, note)


@dataclass(frozen=True)
class NegativeSet:
    """The negatives stage's result: the patches of every image, and the report (reports/negatives.json)."""

    crops: CropSet
    report: dict[str, Any]
    notes: list[dict[str, str]]


def lesion_sides(crops: CropSet) -> np.ndarray:
    """Sorted side lengths (source pixels) of the training lesion crops (all crops if the training split is
    empty): negative patches draw their sides from these, so scale is no cue to the class."""
    train = crops.split == "train"
    boxes = crops.source_box[train] if train.any() else crops.source_box
    return np.sort(np.round(boxes[:, 2] - boxes[:, 0]).astype(np.int64))


def sample_negatives(
    sources: list[NegativeSource], sides: np.ndarray, params: NegativesParams, crop_size: int, seed: int,
    voi_window: bool, percentiles: tuple[float, float], jobs: int,
) -> NegativeSet:
    """Negative patches from every source image (negatives_for_image) with `jobs` processes, and the report."""
    work = partial(negatives_for_image, sides=sides, params=params, crop_size=crop_size, seed=seed,
                   voi_window=voi_window, percentiles=percentiles)
    results = map_progress(work, sources, jobs, "negatives")
    patches = CropSet.concat([r.crops for r in results], crop_size)
    notes = [{"image": src.entry.image_id, "note": r.note} for src, r in zip(sources, results, strict=True) if r.note]
    report = {
        "patches": {"total": len(patches), "wanted": sum(r.wanted for r in results),
                    "by_split": dict(sorted(Counter(patches.split.tolist()).items()))},
        "images_used": sum(1 for r in results if len(r.crops)),
        "notes": notes,
    }
    return NegativeSet(patches, report, notes)
