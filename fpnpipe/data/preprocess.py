"""The preprocess stage's work: manifest rows -> patient-level split -> one job per image -> lesion crops,
with every rejected row and its reason, and the report (reports/preprocess.json)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

from fpnpipe.classes import CLASSES, MARGIN_CLASSES
from fpnpipe.config import CropParams, DataParams, SplitParams
from fpnpipe.data.image_table import ImageEntry
from fpnpipe.data.lesion_crops import crop_lesions, plan_jobs
from fpnpipe.data.pseudonym import Pseudonymizer
from fpnpipe.data.records import Rejection
from fpnpipe.data.schema import SPLITS, CropSet
from fpnpipe.data.sources import import_rows
from fpnpipe.data.splits import assign_splits
from fpnpipe.data.thumbnails import Thumbnail
from fpnpipe.parallel import map_progress


@dataclass(frozen=True)
class PreprocessResult:
    """crops: every accepted lesion's crop; entries: every accepted image (images.json); thumbnails: one per
    entry (thumbnails.h5); rejections: every refused row, in manifest order; report: reports/preprocess.json;
    counts: {split: {margin class: crops}}."""

    crops: CropSet
    entries: list[ImageEntry]
    rejections: list[Rejection]
    report: dict[str, Any]
    counts: dict[str, dict[str, int]]
    images_read: int
    thumbnails: list[Thumbnail]


def _order(r: Rejection) -> tuple[str, int]:
    return (r.source, r.row if r.row is not None else -1)


def preprocess(
    data: DataParams, crop: CropParams, split: SplitParams, seed: int, jobs: int,
    pseudonymizer: Pseudonymizer | None,
) -> PreprocessResult:
    """Import the rows of `data.source` (pseudonymised when a pseudonymizer is given), split patients,
    crop every lesion with `jobs` processes. Raises ValueError / OSError for a file-level problem (an
    unreadable manifest); row-level problems become rejections."""
    rows, rejections = import_rows(data, pseudonymizer)
    n_rows = len(rows) + len(rejections)
    assigned = assign_splits(((r.patient_id, r.label, r.split) for r in rows), split.val_fraction,
                             split.test_fraction, seed)
    image_jobs, planning = plan_jobs(rows, assigned.assignment)
    rejections += planning
    work = partial(crop_lesions, crop=crop, voi_window=data.voi_window, percentiles=data.intensity_percentiles)
    results = map_progress(work, image_jobs, jobs, "preprocess")
    for result in results:
        rejections += result.rejections
    crops = CropSet.concat([r.crops for r in results], crop.size)
    entries = [r.entry for r in results if r.entry is not None]
    thumbnails = [r.thumbnail for r in results if r.entry is not None and r.thumbnail is not None]
    rejections = sorted(rejections, key=_order)

    counts = {s: dict.fromkeys(MARGIN_CLASSES, 0) for s in SPLITS}
    for s, label in zip(crops.split, crops.label, strict=True):
        counts[s][CLASSES[label]] += 1
    report = {
        "rows": {"total": n_rows, "accepted": n_rows - len(rejections), "rejected": len(rejections)},
        "crops": {"total": len(crops), "by_split": counts, "with_fine_annotation": int(crops.has_fine.sum())},
        "images": {
            "accepted": len(entries),
            "normal": sum(1 for e in entries if not e.lesion_boxes and e.all_lesions_known),
            "by_split": dict(Counter(e.split for e in entries)),
        },
        "patients": {"by_split": dict(Counter(assigned.assignment.values())),
                     "split_conflicts": len(assigned.conflicts)},
        "splits_drawn_at_random": list(assigned.drawn),
        # Under pseudonymisation the report withholds quoted paths and ids; the stage's log shows them.
        "rejected": [r.to_json(public=pseudonymizer is not None) for r in rejections],
    }
    return PreprocessResult(crops, entries, rejections, report, counts, len(image_jobs), thumbnails)
