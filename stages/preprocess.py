"""DICOM + manifest (synthetic, CBIS-DDSM or generic CSV) -> lesion crops with fine annotations and a
patient-level split: data/processed/crops.h5, data/processed/images.json, a small thumbnail of every image
with its pixel spacing (data/processed/thumbnails.h5, for the report), reports/preprocess.json.
Rejected rows are reported with their reason and the others go on (--strict: any rejection is fatal)."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, check_raw_dir, fail, log, start
from stages.paths import CROPS, IMAGES, THUMBNAILS
from stages.paths import PREPROCESS_REPORT as REPORT


def main(
    params: Path = PARAMS_OPTION,
    strict: bool = typer.Option(False, "--strict", help="Fail if any row is rejected (also preprocess.strict)."),
) -> None:
    p = start("preprocess", params)
    check_raw_dir("preprocess", p, params)
    strict = strict or p.preprocess.strict

    from fpnpipe.atomic import write_json
    from fpnpipe.classes import MARGIN_CLASSES
    from fpnpipe.data.image_table import write_image_table
    from fpnpipe.data.preprocess import preprocess
    from fpnpipe.data.pseudonym import MAPPING_FILE, open_pseudonymizer, write_mapping
    from fpnpipe.data.schema import SPLITS, write_crops
    from fpnpipe.data.thumbnails import write_thumbnails

    try:
        pseudonymizer = open_pseudonymizer() if p.data.pseudonymized else None
        result = preprocess(p.data, p.crop, p.split, p.seed.data, p.preprocess.jobs, pseudonymizer)
    except (ValueError, OSError) as exc:
        fail(f"preprocess: {exc}")
    rejections = result.rejections
    log.info("preprocess: %d rows, %d images read with %d job(s)", result.report["rows"]["total"],
             result.images_read, p.preprocess.jobs)
    for r in rejections[:20]:
        log.warning("rejected %s", r.describe())
    if len(rejections) > 20:
        log.warning("... and %d more rejected rows: see %s", len(rejections) - 20, REPORT)
    if strict and rejections:
        fail(f"preprocess --strict: {len(rejections)} row(s) rejected, nothing written (first: "
             f"{rejections[0].describe()})")
    if pseudonymizer is not None:
        write_mapping(MAPPING_FILE, pseudonymizer.pairs())  # local and git-ignored, not a DVC output
    write_json(REPORT, result.report)
    if len(result.crops) == 0:
        fail(f"preprocess: no usable lesion rows ({len(rejections)} rejected); see {REPORT}")
    missing = [c for c in MARGIN_CLASSES if result.counts["train"][c] == 0]
    if missing:
        log.warning("no training crops for class(es) %s", ", ".join(missing))
    write_crops(CROPS, result.crops)
    write_image_table(IMAGES, result.entries)
    write_thumbnails(THUMBNAILS, result.thumbnails)
    log.info("preprocess: %d crops -> %s (%s)", len(result.crops), CROPS,
             ", ".join(f"{s}: {sum(result.counts[s].values())}" for s in SPLITS))
