"""Stage C, fine-tuning: all layers trainable, joint epochs alternating with projection every
finetune.project_every epochs and a last-layer-only phase after each projection; the model kept is the
projected one with the best validation margin AUROC among lesion crops: models/final.pt,
models/final_prototypes.h5, dvclive/finetune/."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, log, start
from stages.paths import FINAL_MODEL, FINAL_RECORD, FINETUNE_LIVE, PROJECTED_MODEL
from stages.training import live_epochs, load_sets, load_trained


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("finetune", params)
    sets = load_sets(p, ("train", "val"))

    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.data.projection_record import write_projection_record
    from fpnpipe.losses import PrototypeLoss
    from fpnpipe.model.checkpoint import save_checkpoint
    from fpnpipe.train.projection import describe_projection
    from fpnpipe.train.schedule import run_finetune

    runtime, model, extra = load_trained("finetune", PROJECTED_MODEL, p)
    loss_fn = PrototypeLoss.for_model(p.loss, model)
    train_set = CropDataset(sets["train"], p.augment, seed=p.seed.train)
    push_set = CropDataset(sets["train"])
    val_set = CropDataset(sets["val"])
    with live_epochs(FINETUNE_LIVE) as on_epoch:
        result = run_finetune(model, loss_fn, train_set, push_set, val_set, p.finetune, p.project.batch_size,
                              p.train, runtime, p.seed.train, on_epoch)
    model.load_state_dict(result.state)
    record = describe_projection(model, push_set, result.nearest, runtime, p.project.batch_size)
    info = {"stage": "finetune", "selected_epoch": result.epoch, "val": result.val}
    save_checkpoint(FINAL_MODEL, model, extra["config"], info)
    write_projection_record(FINAL_RECORD, record)
    log.info("finetune: wrote %s and %s (projected model of epoch %d)", FINAL_MODEL, FINAL_RECORD, result.epoch)
