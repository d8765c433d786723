"""Cropping lesions: `crop_lesion` cuts one lesion out of a normalised image, the one library function
that preprocessing (`crop_lesions`, per image of the manifest) and explain-image both call.

A crop is refused, with a reason, when its pixels could not be trusted or would teach nothing:

- the annotation does not fit the image (mask of another size, empty mask, box or circle centre outside);
- the lesion is smaller than 2 pixels;
- the crop box (crop.context x the lesion's longer side) is longer than the image's longer side: no mass
  is that large, and the box is what gets allocated, so memory stays bounded by the image, never by a
  number in a manifest (a circle radius in the thousands);
- less than crop.min_image_fraction of the crop box lies inside the image (the rest would be zero padding);
- the crop is constant (every pixel equal after normalisation).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpnpipe.classes import CLASSES, NORMAL_LABEL
from fpnpipe.config import CropParams
from fpnpipe.data.crops import (
    IntBox,
    circle_box,
    context_box,
    crop_image,
    crop_mask,
    disc_in_box,
    inside_fraction,
    margin_band,
    mask_box,
    shrink_mask,
)
from fpnpipe.data.image_table import ImageEntry
from fpnpipe.data.images import ImageReadError, read_header, read_mask, read_normalised
from fpnpipe.data.intensity import NormalisedImage
from fpnpipe.data.records import Box, Circle, LesionRow, Rejection
from fpnpipe.data.schema import CropSet
from fpnpipe.data.thumbnails import Thumbnail, make_thumbnail
from fpnpipe.reasons import private

_EDGE_TOLERANCE_PX = 1.0


class CropRefused(ValueError):
    """A lesion that cannot be cropped; the message is the reason, as a report shows it."""


@dataclass(frozen=True)
class Annotation:
    """One lesion on an (H, W) image: exactly one of `roi` ((H, W) bool mask), `box` ([x0, y0, x1, y1]) or
    `circle` ([cx, cy, radius]) in source pixels (x = column); `fine`: optional (H, W) bool fine
    annotation of the margin."""

    roi: np.ndarray | None = None
    box: Box | None = None
    circle: Circle | None = None
    fine: np.ndarray | None = None


@dataclass(frozen=True)
class LesionCrop:
    """One cropped lesion. image: (S, S) float32 in [0, 1]; roi: (S, S) bool lesion mask (all False for a
    box annotation); fine: (S, S) bool fine annotation, has_fine whether there is one (an ROI outline's
    margin band or a given fine mask; a box or circle gives none); lesion_box: the lesion's box and box:
    the square crop box, both in source pixels; image_fraction: share of the crop box inside the image."""

    image: np.ndarray
    roi: np.ndarray
    fine: np.ndarray
    has_fine: bool
    lesion_box: Box
    box: IntBox
    image_fraction: float


def load_image(path: Path, voi_window: bool, percentiles: tuple[float, float]) -> np.ndarray | NormalisedImage:
    """(H, W) float32 image in [0, 1], read and normalised as for every crop (a DICOM's pixels are computed
    where a crop reads them: NormalisedImage). Raises ImageReadError (unreadable file) or ValueError (e.g. a
    constant image)."""
    return read_normalised(path, voi_window=voi_window, percentiles=percentiles)


def read_named_mask(path: Path, what: str) -> np.ndarray:
    """read_mask, with the mask's role and file name in the message (the ROI and fine masks fail alike);
    raises CropRefused."""
    try:
        return read_mask(path)
    except ImageReadError as exc:
        raise CropRefused(f"{what} {private(Path(path).name)}: {exc.reason}") from None


def _lesion_box(annotation: Annotation, shape: tuple[int, int]) -> Box:
    """The lesion's box in source pixels, after checking that the annotation fits the (H, W) image."""
    h, w = shape
    given = [name for name in ("roi", "box", "circle") if getattr(annotation, name) is not None]
    if len(given) != 1:
        raise CropRefused(f"a lesion needs exactly one of an ROI mask, a box or a circle, got {len(given)}")
    if annotation.roi is not None:
        mask = annotation.roi
        if mask.shape != shape:
            raise CropRefused(f"ROI mask size {mask.shape[1]}x{mask.shape[0]} differs from the image's {w}x{h}")
        if not mask.any():
            raise CropRefused("ROI mask is empty")
        return tuple(float(v) for v in mask_box(mask))  # type: ignore[return-value]
    if annotation.circle is not None:
        cx, cy, r = annotation.circle
        if not all(math.isfinite(v) for v in annotation.circle) or r <= 0:
            raise CropRefused(f"circle ({cx:g}, {cy:g}, radius {r:g}) needs finite numbers and a positive radius")
        if not (0 <= cx < w and 0 <= cy < h):
            raise CropRefused(f"circle centre ({cx:g}, {cy:g}) is outside the image ({w}x{h})")
        return circle_box(annotation.circle)
    x0, y0, x1, y1 = annotation.box  # type: ignore[misc]
    t = _EDGE_TOLERANCE_PX
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        raise CropRefused(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] needs finite numbers with x1 > x0 and y1 > y0")
    if x0 < -t or y0 < -t or x1 > w + t or y1 > h + t:
        raise CropRefused(f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] extends outside the image ({w}x{h})")
    return x0, y0, x1, y1


def _crop_box(lesion_box: Box, crop: CropParams, shape: tuple[int, int]) -> tuple[IntBox, float]:
    """The square crop box and the share of it inside the image, refusing a box longer than the image's
    longer side (checked before the box is built, so no arithmetic on a huge number) or mostly padding."""
    x0, y0, x1, y1 = lesion_box
    longer = max(x1 - x0, y1 - y0)
    if min(x1 - x0, y1 - y0) < 2:
        raise CropRefused("lesion is smaller than 2 pixels")
    side = crop.context * longer
    if side > max(shape):
        raise CropRefused(
            f"crop box of {side:.0f} px (crop.context {crop.context:g} x the lesion's {longer:.0f} px) is longer "
            f"than the image's longer side ({max(shape)} px)"
        )
    box = context_box(lesion_box, crop.context)
    fraction = inside_fraction(box, shape)
    if fraction < crop.min_image_fraction:
        raise CropRefused(
            f"only {fraction:.0%} of the crop box lies inside the image, below crop.min_image_fraction "
            f"{crop.min_image_fraction:g} (the rest would be padding)"
        )
    return box, fraction


def crop_lesion(image: np.ndarray | NormalisedImage, annotation: Annotation, crop: CropParams) -> LesionCrop:
    """Cut one lesion out of a normalised (H, W) image in [0, 1] (see `load_image`): a square box of side
    crop.context x the lesion box's longer side, centred on it, zero outside the image, resized to
    (crop.size, crop.size). Raises CropRefused with the reason (see the module docstring)."""
    shape = (int(image.shape[0]), int(image.shape[1]))
    lesion_box = _lesion_box(annotation, shape)
    if annotation.fine is not None and annotation.fine.shape != shape:
        fine_shape = annotation.fine.shape
        raise CropRefused(
            f"fine mask size {fine_shape[1]}x{fine_shape[0]} differs from the image's {shape[1]}x{shape[0]}"
        )
    box, fraction = _crop_box(lesion_box, crop, shape)
    pixels = crop_image(image, box, crop.size)
    low, high = float(pixels.min()), float(pixels.max())
    if low == high:
        raise CropRefused(f"constant crop: every pixel is {low:g} after normalisation (a flat part of the image)")
    if annotation.roi is not None:
        roi = crop_mask(annotation.roi, box, crop.size)
    elif annotation.circle is not None:
        roi = shrink_mask(disc_in_box(annotation.circle, box, shape), crop.size)
    else:
        roi = np.zeros((crop.size, crop.size), dtype=bool)
    if annotation.fine is not None:
        fine, has_fine = crop_mask(annotation.fine, box, crop.size), True
    elif annotation.roi is not None:
        # The margin band of a drawn outline is the fine annotation; a box or circle is too coarse.
        fine, has_fine = margin_band(roi, crop.margin_band_px), True
    else:
        fine, has_fine = np.zeros_like(roi), False
    return LesionCrop(
        image=pixels, roi=roi, fine=fine, has_fine=has_fine, lesion_box=lesion_box, box=box, image_fraction=fraction
    )


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
    thumbnail: Thumbnail | None = None
    """The image's thumbnail with its pixel spacing (data/processed/thumbnails.h5); None with `entry`."""


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
            rejections += [_reject(r,
                f"image is listed under several patients: {', '.join(patients)}") for r in image_rows]
            continue
        image_id = image_rows[0].image_id
        if image_id in seen_ids and seen_ids[image_id] != path:
            rejections += [
                _reject(r, f"image_id {image_id!r} already names {private(seen_ids[image_id])}") for r in image_rows
            ]
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


def _annotation(row: LesionRow) -> Annotation:
    """The row's annotation, its masks read from their files; raises CropRefused naming a bad mask."""
    roi = read_named_mask(row.roi_mask_path, "ROI mask") if row.roi_mask_path is not None else None
    fine = read_named_mask(row.fine_mask_path, "fine mask") if row.fine_mask_path is not None else None
    return Annotation(roi=roi, box=row.box, circle=row.circle, fine=fine)


def _crop_set(lesion: LesionCrop, row: LesionRow, job: ImageJob, image_id: str) -> CropSet:
    """A one-crop CropSet of a cropped lesion row."""
    return CropSet(
        images=lesion.image[None],
        fine=lesion.fine.astype(np.uint8)[None],
        has_fine=np.array([lesion.has_fine]),
        roi=lesion.roi.astype(np.uint8)[None],
        label=np.array([CLASSES.index(row.label)], np.int64),
        split=np.array([job.split], dtype=object),
        patient_id=np.array([job.patient_id], dtype=object),
        image_id=np.array([image_id], dtype=object),
        source_box=np.array([lesion.box], np.float32),
    )


def crop_lesions(job: ImageJob, crop: CropParams, voi_window: bool, percentiles: tuple[float, float]) -> ImageResult:
    """Read one image, normalise it, and cut every lesion's crop with `crop_lesion`. Problems become
    rejections of the rows concerned; an unreadable or constant image rejects all its rows."""
    all_rows = job.lesions + job.normal_rows
    try:
        image = load_image(job.image_path, voi_window, percentiles)
    except (ImageReadError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        return ImageResult(CropSet.empty(crop.size), tuple(_reject(r, reason) for r in all_rows), None)

    parts: list[CropSet] = []
    rejections: list[Rejection] = []
    boxes: list[Box] = []
    multi = len(job.lesions) > 1
    for k, row in enumerate(job.lesions, start=1):
        try:
            lesion = crop_lesion(image, _annotation(row), crop)
        except CropRefused as exc:
            rejections.append(_reject(row, str(exc)))
            continue
        parts.append(_crop_set(lesion, row, job, f"{job.image_id}#{k}" if multi else job.image_id))
        boxes.append(lesion.lesion_box)

    entry = ImageEntry(
        image_id=job.image_id,
        source=all_rows[0].source,
        row=all_rows[0].row,
        patient_id=job.patient_id,
        split=job.split,
        shape=(int(image.shape[0]), int(image.shape[1])),
        lesion_boxes=tuple(boxes),
        all_lesions_known=len(boxes) == len(job.lesions),
    )
    thumbnail = Thumbnail(job.image_id, make_thumbnail(np.asarray(image)), entry.shape, _pixel_spacing(job.image_path))
    return ImageResult(CropSet.concat(parts, crop.size), tuple(rejections), entry, thumbnail)


def _pixel_spacing(path: Path) -> tuple[float, float] | None:
    """(row, col) mm per pixel from the file's header (PixelSpacing, else ImagerPixelSpacing), or None."""
    try:
        return read_header(path).pixel_spacing_mm
    except ImageReadError:
        return None
