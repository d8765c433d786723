"""From accepted manifest rows to lesion crops: group rows per image, then crop every lesion of an image
while that image (one full mammogram) is in memory."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpnpipe.classes import CLASSES, NORMAL_LABEL
from fpnpipe.config import CropParams
from fpnpipe.data.crops import (
    box_inside,
    circle_box,
    context_box,
    crop_image,
    crop_mask,
    disc_mask,
    margin_band,
    mask_box,
)
from fpnpipe.data.image_table import ImageEntry
from fpnpipe.data.images import ImageReadError, read_image, read_mask
from fpnpipe.data.intensity import normalize_intensity
from fpnpipe.data.records import LesionRow, Rejection
from fpnpipe.data.schema import CropSet

_EDGE_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class ImageJob:
    """One source image and its accepted rows (lesion rows, or a single normal row)."""

    image_path: Path
    image_id: str
    patient_id: str
    split: str
    lesions: tuple[LesionRow, ...]
    normal_rows: tuple[LesionRow, ...]


@dataclass(frozen=True)
class ImageResult:
    crops: CropSet
    rejections: tuple[Rejection, ...]
    entry: ImageEntry | None
    """None when the image itself could not be used."""


def _reject(row: LesionRow, reason: str) -> Rejection:
    return Rejection(source=row.source, row=row.row, image=row.image_id, reason=reason)


def plan_jobs(rows: list[LesionRow], splits: dict[str, str]) -> tuple[list[ImageJob], list[Rejection]]:
    """Group rows by image. Refuses rows whose patient has no split, an image claimed by two patients,
    an image id naming two files, and normal rows on an image that has lesions. Order: first appearance."""
    rejections: list[Rejection] = []
    by_image: dict[Path, list[LesionRow]] = defaultdict(list)
    for row in rows:
        if row.patient_id not in splits:
            rejections.append(_reject(row, f"patient {row.patient_id!r} has rows in more than one split"))
            continue
        by_image[row.image_path].append(row)

    jobs: list[ImageJob] = []
    seen_ids: dict[str, Path] = {}
    for path, image_rows in by_image.items():
        patients = sorted({r.patient_id for r in image_rows})
        if len(patients) > 1:
            rejections += [_reject(r, f"image is listed under several patients: {', '.join(patients)}") for r in image_rows]
            continue
        image_id = image_rows[0].image_id
        if image_id in seen_ids and seen_ids[image_id] != path:
            rejections += [_reject(r, f"image_id {image_id!r} already names {seen_ids[image_id]}") for r in image_rows]
            continue
        seen_ids[image_id] = path
        lesions = tuple(r for r in image_rows if r.label != NORMAL_LABEL)
        normals = tuple(r for r in image_rows if r.label == NORMAL_LABEL)
        if lesions and normals:
            rejections += [_reject(r, "row says 'normal' but the same image has lesion rows") for r in normals]
            normals = ()
        jobs.append(
            ImageJob(
                image_path=path,
                image_id=image_id,
                patient_id=patients[0],
                split=splits[patients[0]],
                lesions=lesions,
                normal_rows=normals[:1],
            )
        )
    return jobs, rejections


def _read_named_mask(path: Path, what: str) -> np.ndarray:
    """read_mask, with the mask's role in the message (the ROI and fine masks fail alike)."""
    try:
        return read_mask(path)
    except ImageReadError as exc:
        raise ValueError(f"{what} {Path(path).name}: {exc.reason}") from None


def _lesion_region(row: LesionRow, shape: tuple[int, int]) -> tuple[np.ndarray | None, tuple[float, float, float, float]]:
    """The lesion's (H, W) mask where known (ROI mask or disc) and its box; ValueError with a reason."""
    h, w = shape
    if row.roi_mask_path is not None:
        mask = _read_named_mask(row.roi_mask_path, "ROI mask")
        if mask.shape != shape:
            raise ValueError(f"ROI mask size {mask.shape[1]}x{mask.shape[0]} differs from the image's {w}x{h}")
        if not mask.any():
            raise ValueError("ROI mask is empty")
        return mask, tuple(float(v) for v in mask_box(mask))
    if row.circle is not None:
        cx, cy, _ = row.circle
        if not (0 <= cx < w and 0 <= cy < h):
            raise ValueError(f"circle centre ({cx:g}, {cy:g}) is outside the image ({w}x{h})")
        return disc_mask(shape, row.circle), circle_box(row.circle)
    if row.box is not None:
        x0, y0, x1, y1 = row.box
        t = _EDGE_TOLERANCE_PX
        if not box_inside(row.box, shape) or x0 < -t or y0 < -t or x1 > w + t or y1 > h + t:
            raise ValueError(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] extends outside the image ({w}x{h})")
        return None, row.box
    raise ValueError("lesion row has no annotation")


def crop_lesions(job: ImageJob, crop: CropParams, voi_window: bool, percentiles: tuple[float, float]) -> ImageResult:
    """Read one image, normalise it, and cut every lesion's crop. Problems become rejections of the rows
    concerned; an unreadable image rejects all its rows."""
    all_rows = job.lesions + job.normal_rows
    try:
        raw = read_image(job.image_path, voi_window=voi_window)
        image = normalize_intensity(raw, percentiles)
        del raw
    except (ImageReadError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        return ImageResult(CropSet.empty(crop.size), tuple(_reject(r, reason) for r in all_rows), None)

    shape = image.shape
    parts: list[CropSet] = []
    rejections: list[Rejection] = []
    boxes: list[tuple[float, float, float, float]] = []
    multi = len(job.lesions) > 1
    for k, row in enumerate(job.lesions, start=1):
        try:
            lesion_mask, lesion_box = _lesion_region(row, shape)
            if min(lesion_box[2] - lesion_box[0], lesion_box[3] - lesion_box[1]) < 2:
                raise ValueError("lesion is smaller than 2 pixels")
            fine = None
            if row.fine_mask_path is not None:
                fine_full = _read_named_mask(row.fine_mask_path, "fine mask")
                if fine_full.shape != shape:
                    raise ValueError(f"fine mask size {fine_full.shape[1]}x{fine_full.shape[0]} differs from the image's {shape[1]}x{shape[0]}")
        except (ImageReadError, ValueError) as exc:
            rejections.append(_reject(row, getattr(exc, "reason", None) or str(exc)))
            continue
        box = context_box(lesion_box, crop.context)
        roi = crop_mask(lesion_mask, box, crop.size) if lesion_mask is not None else np.zeros((crop.size,) * 2, bool)
        if row.fine_mask_path is not None:
            fine, has_fine = crop_mask(fine_full, box, crop.size), True
        elif row.roi_mask_path is not None:
            # The margin band of a drawn outline is the fine annotation; a box or circle is too coarse.
            fine, has_fine = margin_band(roi, crop.margin_band_px), True
        else:
            fine, has_fine = np.zeros_like(roi), False
        parts.append(
            CropSet(
                images=crop_image(image, box, crop.size)[None],
                fine=fine.astype(np.uint8)[None],
                has_fine=np.array([has_fine]),
                roi=roi.astype(np.uint8)[None],
                label=np.array([CLASSES.index(row.label)], np.int64),
                split=np.array([job.split], dtype=object),
                patient_id=np.array([job.patient_id], dtype=object),
                image_id=np.array([f"{job.image_id}#{k}" if multi else job.image_id], dtype=object),
                source_box=np.array([box], np.float32),
            )
        )
        boxes.append(lesion_box)

    entry = ImageEntry(
        image_id=job.image_id,
        image_path=_display_path(job.image_path),
        patient_id=job.patient_id,
        split=job.split,
        shape=(int(shape[0]), int(shape[1])),
        lesion_boxes=tuple(boxes),
        all_lesions_known=len(boxes) == len(job.lesions),
    )
    return ImageResult(CropSet.concat(parts, crop.size), tuple(rejections), entry)


def _display_path(path: Path) -> str:
    """Path relative to the working directory when below it (portable artifacts), else absolute."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)
