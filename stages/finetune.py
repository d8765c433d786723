"""Stage C, fine-tuning: all layers trainable, joint epochs alternating with projection every
finetune.project_every epochs and a last-layer-only phase after each projection; the model kept is the
projected one with the best validation margin AUROC among lesion crops: models/final.pt,
models/final_prototypes.h5, dvclive/finetune/. Runs on train.processes processes; saves its state after
every epoch and resumes from it after a kill."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fpnpipe.config import Params
from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import CROPS, FINAL_MODEL, FINAL_RECORD, FINETUNE_LIVE, NEGATIVES, PROJECTED_MODEL
from stages.training import SetupError, live_epochs, load_sets, published, resume_file, run_ranks

PARAMS = ("seed.train", "crop.size", "loss", "train.device", "train.bf16", "train.channels_last",
          "train.balance_classes", "augment", "project", "finetune")
"""The params this stage reads (dvc.yaml lists the same; tests check it): they key its resume file."""


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("finetune", params)
    sets = load_sets(p, ("train", "val"))

    from fpnpipe.data.projection_record import write_projection_record
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    try:
        model, extra = load_checkpoint(PROJECTED_MODEL)
    except CheckpointError as exc:
        fail(f"finetune: {exc}")
    resume = resume_file("finetune", p, PARAMS, (CROPS, NEGATIVES, PROJECTED_MODEL))
    with published(FINETUNE_LIVE) as live:
        result = run_ranks("finetune", partial(train, p, live, resume.key, sets if p.train.processes == 1 else None), p)
        if result is None:
            return  # a torchrun rank other than 0
        model.load_state_dict(result["state"])
        record = result["record"]
        info = {"stage": "finetune", "selected_epoch": result["epoch"], "val": result["val"],
                **record.duplicate_counts()}
        save_checkpoint(FINAL_MODEL, model, extra["config"], info)
        write_projection_record(FINAL_RECORD, record)
    resume.clear()
    log.info("finetune: wrote %s and %s (projected model of epoch %d)", FINAL_MODEL, FINAL_RECORD, result["epoch"])


def train(p: Params, live: Path | None, key: str, sets: dict | None, dist) -> dict | None:
    """One rank of stage C; returns the selected model's weights, its projection record, epoch and
    validation figures on rank 0."""
    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.losses import PrototypeLoss
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint
    from fpnpipe.runtime import setup_runtime
    from fpnpipe.train.projection import describe_projection
    from fpnpipe.train.resume import Resume
    from fpnpipe.train.schedule import run_finetune
    from stages.paths import RESUME_DIR

    sets = sets or load_sets(p, ("train", "val"))  # the caller's copy in a single process
    runtime = setup_runtime(p.train, p.seed.train, dist)
    try:
        model = runtime.prepare(load_checkpoint(PROJECTED_MODEL)[0])
    except CheckpointError as exc:
        raise SetupError(str(exc)) from None
    loss_fn = PrototypeLoss.for_model(p.loss, model)
    train_set = CropDataset(sets["train"], p.augment, seed=p.seed.train)
    push_set = CropDataset(sets["train"])
    val_set = CropDataset(sets["val"])
    with live_epochs(live if dist.main else None) as on_epoch:
        result = run_finetune(model, loss_fn, train_set, push_set, val_set, p.finetune, p.project, p.train, runtime,
                              p.seed.train, on_epoch, Resume(RESUME_DIR / "finetune.pt", key, dist))
    if not dist.main:
        return None
    model.load_state_dict(result.state)
    record = describe_projection(model, push_set, result.nearest, runtime, p.project.batch_size)
    return {"state": result.state, "record": record, "epoch": result.epoch, "val": result.val}
