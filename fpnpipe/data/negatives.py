"""Lesion-free tissue patches (the negative class), drawn to look like lesion crops in everything but the lesion.

Each patch imitates a training lesion crop (its template, fpnpipe.data.negative_plan): it copies the
template's box side, is centred inside the breast, may pass the image border (zero padding, with the same
crop.min_image_fraction limit as lesion crops) and may hold air, and keeps at least
negatives.min_distance_px from every lesion box of its image. Among `negatives.candidates` such boxes,
drawn at random positions, the one whose crop statistics (pixel mean and standard deviation, share of dark
pixels = air or padding, distance from the centre to the nearest dark pixel: fpnpipe.data.crop_stats) lie
nearest the template's is taken (nearest-neighbour matching, Rubin 1973; distance in units of each statistic's spread
over the lesion crops). So framing, position relative to the breast edge, share of air and intensity
statistics follow the lesion crops' distribution, and a classifier on them cannot tell the classes apart
(reports/negatives.json gives its cross-validated AUROC). With negatives.match false the first valid
candidate is taken: side copied, nothing else matched (an ablation).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from scipy import ndimage

from fpnpipe.classes import NEGATIVE_INDEX
from fpnpipe.config import CropParams, NegativesParams
from fpnpipe.data.crop_stats import EDGE_CAP, MATCHED, columns, crop_statistics, framing_report
from fpnpipe.data.crops import IntBox, crop_image, inside_fraction
from fpnpipe.data.images import ImageReadError, read_image
from fpnpipe.data.intensity import normalize_intensity
from fpnpipe.data.negative_plan import NegativeJob, NegativePlan, NegativeSource, Template, plan_negatives, redeal
from fpnpipe.data.schema import SPLITS, CropSet
from fpnpipe.parallel import map_progress

_MASK_MAX_SIDE = 1024  # the breast mask is computed on a subsampled image no larger than this
_MAX_OVERLAP_IOU = 0.25  # patches of one image may overlap this much at most
DEALING_ROUNDS = 3


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


def breast_depth(image: np.ndarray) -> tuple[np.ndarray, int]:
    """Depth inside the breast on a subsampled grid: (h, w) float32 distance in source pixels from each cell
    to the nearest cell outside the breast or beyond the image border (0 outside the breast), and the
    subsampling step f (depth[i, j] describes image pixel (i*f, j*f)). The breast is the largest component
    brighter than the Otsu threshold, holes filled."""
    f = max(1, math.ceil(max(image.shape) / _MASK_MAX_SIDE))
    small = image[::f, ::f]
    tissue = small > otsu_threshold(small)
    labels, n = ndimage.label(tissue)
    if n == 0:
        return np.zeros(tissue.shape, np.float32), f
    sizes = ndimage.sum_labels(tissue, labels, index=np.arange(1, n + 1))
    mask = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # the image border counts as outside
    return (depth * f).astype(np.float32), f


def centre_cells(depth: np.ndarray, step: int, side: int, edge: float | None, skin_margin_px: int) -> np.ndarray:
    """(K, 2) [x, y] image coordinates of the cells a patch of `side` source pixels may be centred on: inside
    the breast by more than `skin_margin_px`, and, when `edge` is given (the template's distance from its
    centre to the nearest air or padding, as a share of its side, crop_stats.edge_distance), at that depth:
    at least half a side deep for a template with no air within half a side (edge at its cap 0.5), else
    within a tenth of a side of edge x side; the cells nearest that depth when none is."""
    inside = depth > skin_margin_px
    ok = inside
    if edge is not None and inside.any():
        want = edge * side
        gap = np.maximum(want - depth, 0.0) if edge >= EDGE_CAP else np.abs(depth - want)
        gap = np.where(inside, gap, np.inf)
        ok = inside & (gap <= gap.min() + max(0.1 * side, 2.0 * step))
    ys, xs = np.nonzero(ok)
    return np.stack([xs * step, ys * step], axis=1)


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
    """What one job gave: boxes and their (K, S, S) crops, the templates that found no place, and a note
    when the image could not be used at all."""

    boxes: list[IntBox]
    pixels: np.ndarray
    failed: list[Template]
    note: str | None = None


@dataclass(frozen=True)
class Sampling:
    """What every image's sampling shares: the params, the crop geometry and the matching distance's units."""

    params: NegativesParams
    crop: CropParams
    scale: tuple[float, ...]


def draw_patch(
    image: np.ndarray,
    depth: np.ndarray,
    step: int,
    template: Template,
    lesion_boxes: tuple[tuple[float, float, float, float], ...],
    taken: list[IntBox],
    sampling: Sampling,
    rng: np.random.Generator,
) -> tuple[IntBox, np.ndarray] | None:
    """One patch imitating `template` on a normalised (H, W) image: its box and (S, S) crop, or None when
    no valid box turned up in negatives.max_attempts draws. A box is valid when its centre lies on a cell
    of `centre_cells` (the breast depth map `depth`, subsampled by `step`; at the template's depth when
    matching), at least crop.min_image_fraction of it lies inside the image, it keeps
    negatives.min_distance_px from every lesion box and overlaps no `taken` box by more than IoU 0.25.
    Among the first negatives.candidates valid boxes, the one whose statistics are nearest the template's
    wins (the first one when negatives.match is false)."""
    params, crop = sampling.params, sampling.crop
    h, w = image.shape
    side = max(2, min(template.side, max(h, w)))
    target = np.asarray(template.stats)
    scale = np.asarray(sampling.scale)
    edge = template.stats[MATCHED.index("edge_distance")] if params.match else None
    centres = centre_cells(depth, step, side, edge, params.skin_margin_px)
    if len(centres) == 0:
        return None
    best: tuple[float, IntBox, np.ndarray] | None = None
    valid = 0
    for _ in range(params.max_attempts):
        cx, cy = centres[int(rng.integers(len(centres)))] + rng.integers(0, step, 2)
        x0, y0 = int(cx) - side // 2, int(cy) - side // 2
        box = (x0, y0, x0 + side, y0 + side)
        if inside_fraction(box, (h, w)) < crop.min_image_fraction:
            continue
        if any(box_distance(box, lb) < params.min_distance_px for lb in lesion_boxes):
            continue
        if any(_iou(box, b) > _MAX_OVERLAP_IOU for b in taken):
            continue
        pixels = crop_image(image, box, crop.size)
        if pixels.min() == pixels.max():
            continue
        valid += 1
        if not params.match:
            return box, pixels
        stats = columns(crop_statistics(pixels[None], np.array([side])), MATCHED)[0]
        distance = float((((stats - target) / scale) ** 2).sum())
        if best is None or distance < best[0]:
            best = (distance, box, pixels)
        if valid == params.candidates:
            break
    return None if best is None else (best[1], best[2])


def negatives_for_image(
    job: NegativeJob, sampling: Sampling, seed: int, voi_window: bool, percentiles: tuple[float, float]
) -> NegativeResult:
    """The patches of one job, one per template, seeded by (seed, image_id, round) so the result does not
    depend on which worker runs it or in what order."""
    size = sampling.crop.size
    none = np.zeros((0, size, size), np.float32)
    if job.source.image_path is None:
        return NegativeResult([], none, list(job.templates), "no image file")
    try:
        image = normalize_intensity(read_image(job.source.image_path, voi_window=voi_window), percentiles)
    except (ImageReadError, ValueError) as exc:
        return NegativeResult([], none, list(job.templates), f"unreadable: {getattr(exc, 'reason', None) or exc}")
    depth, step = breast_depth(image)
    if not (depth > sampling.params.skin_margin_px).any():
        return NegativeResult([], none, list(job.templates), "no breast tissue found (Otsu threshold)")
    rng = np.random.default_rng([seed, zlib.crc32(job.source.entry.image_id.encode()), job.round])
    taken = list(job.taken)
    boxes: list[IntBox] = []
    pixels: list[np.ndarray] = []
    failed: list[Template] = []
    for template in job.templates:
        drawn = draw_patch(image, depth, step, template, job.source.entry.lesion_boxes, taken, sampling, rng)
        if drawn is None:
            failed.append(template)
            continue
        boxes.append(drawn[0])
        pixels.append(drawn[1])
        taken.append(drawn[0])
    return NegativeResult(boxes, np.stack(pixels) if pixels else none, failed)


def _patches(source: NegativeSource, boxes: list[IntBox], pixels: np.ndarray, size: int) -> CropSet:
    """The CropSet of one image's patches, numbered #neg1, #neg2, ... in the order they were taken."""
    n, entry = len(boxes), source.entry
    return CropSet(
        images=pixels,
        fine=np.zeros((n, size, size), np.uint8),
        has_fine=np.ones(n, bool),  # annotated: nothing in a negative patch is relevant
        roi=np.zeros((n, size, size), np.uint8),
        label=np.full(n, NEGATIVE_INDEX, np.int64),
        split=np.array([entry.split] * n, dtype=object),
        patient_id=np.array([entry.patient_id] * n, dtype=object),
        image_id=np.array([f"{entry.image_id}#neg{k}" for k in range(1, n + 1)], dtype=object),
        source_box=np.array(boxes, np.float32).reshape(n, 4),
    )


@dataclass(frozen=True)
class NegativeSet:
    """The negatives stage's result: the patches of every image, and the report (reports/negatives.json)."""

    crops: CropSet
    report: dict[str, Any]
    notes: list[dict[str, str]]


def sample_negatives(
    plan: NegativePlan, params: NegativesParams, crop: CropParams, seed: int,
    voi_window: bool, percentiles: tuple[float, float], jobs: int,
) -> NegativeSet:
    """The patches of every job of `plan` (negatives_for_image, `jobs` processes), and the report. A template
    that finds no place on its image is dealt to another image of its split (negative_plan.redeal), for at
    most DEALING_ROUNDS rounds in all."""
    sampling = Sampling(params, crop, plan.scale)
    work = partial(negatives_for_image, sampling=sampling, seed=seed, voi_window=voi_window,
                   percentiles=percentiles)
    boxes: dict[int, list[IntBox]] = {}
    pixels: dict[int, list[np.ndarray]] = {}
    notes = list(plan.notes)
    todo = plan.jobs
    for dealing in range(DEALING_ROUNDS):
        results = map_progress(work, todo, jobs, "negatives" if dealing == 0 else f"negatives, round {dealing + 1}")
        failed: list[tuple[int, Template]] = []
        for job, r in zip(todo, results, strict=True):
            boxes.setdefault(job.index, []).extend(r.boxes)
            pixels.setdefault(job.index, []).append(r.pixels)
            failed += [(job.index, t) for t in r.failed]
            if r.note:
                notes.append({"image": job.source.entry.image_id, "note": r.note})
        todo = redeal(plan, failed, boxes, dealing + 1, seed) if dealing + 1 < DEALING_ROUNDS else []
        if not todo:
            break
    parts = [_patches(plan.sources[i], boxes[i], np.concatenate(pixels[i]), crop.size) for i in sorted(boxes)]
    patches = CropSet.concat(parts, crop.size)
    by_split = Counter(patches.split.tolist())
    for split, n in plan.wanted.items():
        if by_split[split] < n:
            notes.append({"image": f"({split} split)", "note": f"{by_split[split]} of {n} patches found a place "
                          f"in {DEALING_ROUNDS} dealing rounds of {params.max_attempts} attempts each"})
    report = {
        "ratio": params.ratio,
        "matched": params.match,
        "patches": {"total": len(patches), "wanted": sum(plan.wanted.values()),
                    "by_split": {s: by_split[s] for s in SPLITS if s in by_split or s in plan.wanted},
                    "wanted_by_split": plan.wanted},
        "images_used": sum(1 for b in boxes.values() if b),
        "notes": notes,
    }
    return NegativeSet(patches, report, notes)


def negatives_from(
    sources: list[NegativeSource], lesions: CropSet, params: NegativesParams, crop: CropParams, seed: int,
    voi_window: bool, percentiles: tuple[float, float], jobs: int,
) -> NegativeSet:
    """The negatives stage's work: plan (negative_plan.plan_negatives), sample, and add the framing check
    (framing_report) to the report."""
    plan = plan_negatives(sources, lesions, params.ratio, seed)
    result = sample_negatives(plan, params, crop, seed, voi_window, percentiles, jobs)
    report = {**result.report, "framing": framing_report(lesions, result.crops, seed)} if len(result.crops) else \
        result.report
    return NegativeSet(result.crops, report, result.notes)
