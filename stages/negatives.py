"""Lesion-free tissue patches for the negative class, from normal images and from lesion images away from
every lesion, inside the breast, at the scale of the lesion crops; split inherited from the patient:
data/processed/negatives.h5, reports/negatives.json."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import CROPS, IMAGES, NEGATIVES
from stages.paths import NEGATIVES_REPORT as REPORT


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("negatives", params)

    import numpy as np

    from fpnpipe.atomic import write_json
    from fpnpipe.data.image_table import read_image_table
    from fpnpipe.data.negatives import locate, negatives_for_image
    from fpnpipe.data.schema import CropSet, SchemaError, read_crops, write_crops
    from fpnpipe.data.sources import image_paths, import_rows
    from fpnpipe.parallel import map_progress

    try:
        crops = read_crops(CROPS, p.crop.size)
        entries = read_image_table(IMAGES)
        sources = locate(entries, image_paths(import_rows(p.data)[0]))  # files by manifest row, not by name
    except (SchemaError, ValueError, OSError) as exc:
        fail(f"negatives: {exc}")
    # Patch sides follow the lesion crops' sides in source pixels (training split), so scale is no cue.
    train = crops.split == "train"
    boxes = crops.source_box[train] if train.any() else crops.source_box
    sides = np.sort(np.round(boxes[:, 2] - boxes[:, 0]).astype(np.int64))

    work = partial(
        negatives_for_image,
        sides=sides,
        params=p.negatives,
        crop_size=p.crop.size,
        seed=p.seed,
        voi_window=p.data.voi_window,
        percentiles=p.data.intensity_percentiles,
    )
    results = map_progress(work, sources, p.preprocess.jobs, "negatives")
    negatives = CropSet.concat([r.crops for r in results], p.crop.size)
    if len(negatives) == 0:
        fail("negatives: no tissue patch could be taken from any image; see the notes in the log")
    notes = [{"image": e.image_id, "note": r.note} for e, r in zip(entries, results) if r.note]
    for n in notes[:10]:
        log.warning("negatives: %s: %s", n["image"], n["note"])
    report = {
        "patches": {"total": len(negatives), "wanted": sum(r.wanted for r in results),
                    "by_split": dict(sorted(Counter(negatives.split.tolist()).items()))},
        "images_used": sum(1 for r in results if len(r.crops)),
        "notes": notes,
    }
    write_crops(NEGATIVES, negatives)
    write_json(REPORT, report)
    log.info("negatives: %d patches -> %s %s", len(negatives), NEGATIVES, report["patches"]["by_split"])
