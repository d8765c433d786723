"""Stage B, projection: every prototype replaced by its most similar latent patch among training images of
its own class at its own FPN level; writes the projected model and where each prototype came from:
models/projected.pt, models/projected_prototypes.h5."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, log, start
from stages.paths import PROJECTED_MODEL, PROJECTED_RECORD, WARMUP_MODEL
from stages.training import load_sets, load_trained


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("project", params)
    sets = load_sets(p, ("train",))

    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.data.projection_record import write_projection_record
    from fpnpipe.model.build import prototype_network
    from fpnpipe.model.checkpoint import save_checkpoint
    from fpnpipe.train.projection import describe_projection, project

    runtime, model, extra = load_trained("project", WARMUP_MODEL, p)
    push_set = CropDataset(sets["train"])
    net = prototype_network(model)
    nearest = project(net, push_set, p.project.batch_size, runtime, p.train.num_workers) if net else None
    record = describe_projection(model, push_set, nearest, runtime, p.project.batch_size)
    log.info("project: %d prototypes projected onto %d training crops", len(record.similarity),
             len(set(record.source_image_id.tolist())))
    save_checkpoint(PROJECTED_MODEL, model, extra["config"], {"stage": "project"})
    write_projection_record(PROJECTED_RECORD, record)
    log.info("project: wrote %s and %s", PROJECTED_MODEL, PROJECTED_RECORD)
