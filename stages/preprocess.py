"""DICOM + manifest (synthetic, CBIS-DDSM or generic CSV) -> lesion crops with fine annotations and a
patient-level split: data/processed/crops.h5, data/processed/images.json, reports/preprocess.json.
Rejected rows are reported with their reason and the others go on (--strict: any rejection is fatal)."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stages.common import PARAMS_OPTION, fail, log, start

if TYPE_CHECKING:
    from fpnpipe.data.records import Rejection
from stages.paths import CROPS, IMAGES
from stages.paths import PREPROCESS_REPORT as REPORT


def main(
    params: Path = PARAMS_OPTION,
    strict: bool = typer.Option(False, "--strict", help="Fail if any row is rejected (also preprocess.strict)."),
) -> None:
    p = start("preprocess", params)
    strict = strict or p.preprocess.strict

    from fpnpipe.atomic import write_json
    from fpnpipe.classes import CLASSES, MARGIN_CLASSES
    from fpnpipe.data.image_table import write_image_table
    from fpnpipe.data.lesion_crops import crop_lesions, plan_jobs
    from fpnpipe.data.pseudonym import MAPPING_FILE, open_pseudonymizer, write_mapping
    from fpnpipe.data.schema import SPLITS, CropSet, write_crops
    from fpnpipe.data.sources import import_rows
    from fpnpipe.data.splits import assign_splits
    from fpnpipe.parallel import map_progress

    try:
        pseudonymizer = open_pseudonymizer() if p.data.pseudonymized else None
        rows, rejections = import_rows(p.data, pseudonymizer)
    except (ValueError, OSError) as exc:
        fail(f"preprocess: {exc}")
    n_rows = len(rows) + len(rejections)
    split = assign_splits(((r.patient_id, r.label, r.split) for r in rows), p.split.val_fraction, p.split.test_fraction, p.seed)
    jobs, planning = plan_jobs(rows, split.assignment)
    rejections += planning
    log.info("preprocess: %d rows, %d images to read with %d job(s)", n_rows, len(jobs), p.preprocess.jobs)

    work = partial(crop_lesions, crop=p.crop, voi_window=p.data.voi_window, percentiles=p.data.intensity_percentiles)
    results = map_progress(work, jobs, p.preprocess.jobs, "preprocess")
    for result in results:
        rejections += result.rejections
    crops = CropSet.concat([r.crops for r in results], p.crop.size)
    entries = [r.entry for r in results if r.entry is not None]

    counts = {s: {c: 0 for c in MARGIN_CLASSES} for s in SPLITS}
    for s, label in zip(crops.split, crops.label):
        counts[s][CLASSES[label]] += 1
    report = {
        "rows": {"total": n_rows, "accepted": n_rows - len(rejections), "rejected": len(rejections)},
        "crops": {"total": len(crops), "by_split": counts, "with_fine_annotation": int(crops.has_fine.sum())},
        "images": {
            "accepted": len(entries),
            "normal": sum(1 for e in entries if not e.lesion_boxes and e.all_lesions_known),
            "by_split": dict(Counter(e.split for e in entries)),
        },
        "patients": {"by_split": dict(Counter(split.assignment.values())), "split_conflicts": len(split.conflicts)},
        "splits_drawn_at_random": list(split.drawn),
        # Under pseudonymisation the report withholds quoted paths and ids; the log below shows them.
        "rejected": [r.to_json(public=p.data.pseudonymized) for r in sorted(rejections, key=_order)],
    }
    for r in rejections[:20]:
        log.warning("rejected %s", r.describe())
    if len(rejections) > 20:
        log.warning("... and %d more rejected rows: see %s", len(rejections) - 20, REPORT)

    if strict and rejections:
        fail(f"preprocess --strict: {len(rejections)} row(s) rejected, nothing written (first: "
             f"{rejections[0].describe()})")
    if pseudonymizer is not None:
        write_mapping(MAPPING_FILE, pseudonymizer.pairs())  # local and git-ignored, not a DVC output
    write_json(REPORT, report)
    if len(crops) == 0:
        fail(f"preprocess: no usable lesion rows ({len(rejections)} rejected); see {REPORT}")
    missing = [c for c in MARGIN_CLASSES if counts["train"][c] == 0]
    if missing:
        log.warning("no training crops for class(es) %s", ", ".join(missing))
    write_crops(CROPS, crops)
    write_image_table(IMAGES, entries)
    log.info("preprocess: %d crops -> %s (%s)", len(crops), CROPS,
             ", ".join(f"{s}: {sum(counts[s].values())}" for s in SPLITS))


def _order(r: "Rejection") -> tuple[str, int]:
    return (r.source, r.row if r.row is not None else -1)
