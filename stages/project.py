"""Stage B, projection: every prototype replaced by its most similar latent patch among training images of
its own class at its own FPN level; writes the projected model and where each prototype came from:
models/projected.pt, models/projected_prototypes.h5."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, load_sets, load_trained, log, start
from stages.paths import PROJECTED_MODEL, PROJECTED_RECORD, WARMUP_MODEL


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("project", params)
    sets = load_sets(p, ("train",))

    from fpnpipe.model import save_checkpoint
    from fpnpipe.train.data import CropDataset
    from fpnpipe.train.projection import projection_record
    from fpnpipe.train.record_io import empty_record, write_projection_record
    from fpnpipe.train.schedule import project

    runtime, model, extra = load_trained("project", WARMUP_MODEL, p)
    push_set = CropDataset(sets["train"])
    if getattr(model, "has_prototypes", False):
        nearest = project(model, push_set, p.project.batch_size, p.train, runtime)
        record = projection_record(model, push_set, nearest, runtime, p.project.batch_size)
        log.info("project: %d prototypes projected onto %d training crops", len(record.similarity),
                 len(set(record.source_image_id.tolist())))
    else:
        record = empty_record(push_set.crops.crop_size)
        log.info("project: model.arch %s has no prototypes; nothing to project", p.model.arch)
    save_checkpoint(PROJECTED_MODEL, model, extra.get("config") or {}, {"stage": "project"})
    write_projection_record(PROJECTED_RECORD, record)
    log.info("project: wrote %s and %s", PROJECTED_MODEL, PROJECTED_RECORD)
