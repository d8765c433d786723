"""Stage B, projection: every prototype replaced by its most similar latent patch among training images of
its own class at its own FPN level, prototypes of one class and level on distinct patches
(project.distinct); writes the projected model and where each prototype came from: models/projected.pt,
models/projected_prototypes.h5. Runs on train.processes processes, each searching its share of the crops."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fpnpipe.config import Params
from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import PROJECTED_MODEL, PROJECTED_RECORD, WARMUP_MODEL
from stages.training import SetupError, cpu_state, load_sets, run_ranks


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("project", params)
    sets = load_sets(p, ("train",))

    from fpnpipe.data.projection_record import write_projection_record
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    try:
        model, extra = load_checkpoint(WARMUP_MODEL)
    except CheckpointError as exc:
        fail(f"project: {exc}")
    result = run_ranks("project", partial(push, p, sets if p.train.processes == 1 else None), p)
    if result is None:
        return  # a torchrun rank other than 0
    record = result["record"]
    model.load_state_dict(result["state"])
    counts = record.duplicate_counts()
    log.info("project: %d prototypes projected onto %d training crops (%d displaced, %d duplicates)",
             len(record.similarity), len(set(record.source_image_id.tolist())), counts["displaced"],
             counts["duplicates"])
    save_checkpoint(PROJECTED_MODEL, model, extra["config"], {"stage": "project", **counts})
    write_projection_record(PROJECTED_RECORD, record)
    log.info("project: wrote %s and %s", PROJECTED_MODEL, PROJECTED_RECORD)


def push(p: Params, sets: dict | None, dist) -> dict | None:
    """One rank of stage B; returns the projected weights and the projection record on rank 0."""
    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.model.build import prototype_network
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint
    from fpnpipe.runtime import setup_runtime
    from fpnpipe.train.progress import StageProgress
    from fpnpipe.train.projection import describe_projection, project

    sets = sets or load_sets(p, ("train",))  # the caller's copy in a single process
    runtime = setup_runtime(p.train, p.seed.train, dist)
    try:
        model = runtime.prepare(load_checkpoint(WARMUP_MODEL)[0])
    except CheckpointError as exc:
        raise SetupError(str(exc)) from None
    push_set = CropDataset(sets["train"])
    net = prototype_network(model)
    nearest = None
    if net is not None:
        with StageProgress("project", len(push_set)) as progress:
            nearest = project(net, push_set, p.project.batch_size, runtime, p.project.distinct, progress)
    if not dist.main:
        return None
    record = describe_projection(model, push_set, nearest, runtime, p.project.batch_size)
    return {"state": cpu_state(model), "record": record}
