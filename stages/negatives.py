"""Lesion-free tissue patches for the negative class, from normal images and from lesion images away from
every lesion, inside the breast, at the scale of the lesion crops; split inherited from the patient:
data/processed/negatives.h5, reports/negatives.json."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import CROPS, IMAGES, NEGATIVES
from stages.paths import NEGATIVES_REPORT as REPORT


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("negatives", params)

    from fpnpipe.atomic import write_json
    from fpnpipe.data.image_table import read_image_table
    from fpnpipe.data.negatives import lesion_sides, locate, sample_negatives
    from fpnpipe.data.schema import SchemaError, read_crops, write_crops
    from fpnpipe.data.sources import image_paths, import_rows

    try:
        crops = read_crops(CROPS, p.crop.size)
        entries = read_image_table(IMAGES)
        sources = locate(entries, image_paths(import_rows(p.data)[0]))  # files by manifest row, not by name
    except (SchemaError, ValueError, OSError) as exc:
        fail(f"negatives: {exc}")
    result = sample_negatives(sources, lesion_sides(crops), p.negatives, p.crop.size, p.seed.data, p.data.voi_window,
                              p.data.intensity_percentiles, p.preprocess.jobs)
    if len(result.crops) == 0:
        fail("negatives: no tissue patch could be taken from any image; see the notes in the log")
    for n in result.notes[:10]:
        log.warning("negatives: %s: %s", n["image"], n["note"])
    write_crops(NEGATIVES, result.crops)
    write_json(REPORT, result.report)
    log.info("negatives: %d patches -> %s %s", len(result.crops), NEGATIVES, result.report["patches"]["by_split"])
