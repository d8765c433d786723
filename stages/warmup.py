"""Stage A, warm-up: the backbone frozen, the feature pyramid and the prototypes (and the last layer if
warmup.train_last_layer) trained on equation (4) with augmentation: models/warmup.pt, dvclive/warmup/."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import WARMUP_LIVE, WARMUP_MODEL
from stages.training import live_epochs, load_sets


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("warmup", params)
    sets = load_sets(p, ("train", "val"))

    from fpnpipe.config import ConfigError
    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.losses import PrototypeLoss
    from fpnpipe.model.build import build_model
    from fpnpipe.model.checkpoint import model_config, save_checkpoint
    from fpnpipe.runtime import setup_runtime
    from fpnpipe.train.schedule import run_warmup

    try:
        runtime = setup_runtime(p.train, p.seed.train)
        model = build_model(p.model, p.prototypes, seed=p.seed.train)
    except (ConfigError, ValueError) as exc:
        fail(f"warmup: {exc}")
    model = runtime.prepare(model)
    loss_fn = PrototypeLoss.for_model(p.loss, model)
    train_set = CropDataset(sets["train"], p.augment, seed=p.seed.train)
    val_set = CropDataset(sets["val"])
    log.info("warmup: %d training and %d validation crops, %d epochs", len(train_set), len(val_set), p.warmup.epochs)
    with live_epochs(WARMUP_LIVE) as on_epoch:
        run_warmup(model, loss_fn, train_set, val_set, p.warmup, p.train, runtime, p.seed.train, on_epoch)
    save_checkpoint(WARMUP_MODEL, model, model_config(p.model, p.prototypes), {"stage": "warmup"})
    log.info("warmup: wrote %s", WARMUP_MODEL)
