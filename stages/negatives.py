"""Lesion-free tissue patches for the negative class, negatives.ratio per lesion crop in each split, from
normal images and from lesion images away from every lesion, each matched to a training lesion crop's side,
framing and intensity statistics; split inherited from the patient: data/processed/negatives.h5,
reports/negatives.json (with how well crop statistics alone tell lesions from negatives)."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, check_raw_dir, fail, log, start
from stages.paths import CROPS, IMAGES, NEGATIVES
from stages.paths import NEGATIVES_REPORT as REPORT


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("negatives", params)
    check_raw_dir("negatives", p, params)

    from fpnpipe.atomic import write_json
    from fpnpipe.data.image_table import read_image_table
    from fpnpipe.data.negative_plan import locate
    from fpnpipe.data.negatives import negatives_from
    from fpnpipe.data.schema import SchemaError, read_crops, write_crops
    from fpnpipe.data.sources import image_paths, import_rows

    try:
        crops = read_crops(CROPS, p.crop.size)
        entries = read_image_table(IMAGES)
        sources = locate(entries, image_paths(import_rows(p.data)[0]))  # files by manifest row, not by name
    except (SchemaError, ValueError, OSError) as exc:
        fail(f"negatives: {exc}")
    result = negatives_from(sources, crops, p.negatives, p.crop, p.seed.data, p.data.voi_window,
                            p.data.intensity_percentiles, p.preprocess.jobs)
    if len(result.crops) == 0:
        fail("negatives: no tissue patch could be taken from any image; see the notes in the log")
    for n in result.notes[:10]:
        log.warning("negatives: %s: %s", n["image"], n["note"])
    write_crops(NEGATIVES, result.crops)
    write_json(REPORT, result.report)
    log.info("negatives: %d patches -> %s %s", len(result.crops), NEGATIVES, result.report["patches"]["by_split"])
    framing = result.report.get("framing")
    if framing:
        auroc = framing["shortcut_auroc"]
        log.info("negatives: crop statistics tell lesions from negatives with AUROC %s (mean, std, dark share, "
                 "side) and %s (with the edge distance); chance 0.5", auroc["mean_std_dark_side"], auroc["all"])
        if framing["warning"]:
            log.warning("negatives: %s", framing["warning"])
