"""Stage A, warm-up: the backbone frozen, the feature pyramid and the prototypes (and the last layer if
warmup.train_last_layer) trained on equation (4) with augmentation: models/warmup.pt, dvclive/warmup/.
Runs on train.processes processes; saves its state after every epoch and resumes from it after a kill."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fpnpipe.config import Params
from stages.common import PARAMS_OPTION, log, start
from stages.paths import CROPS, NEGATIVES, WARMUP_LIVE, WARMUP_MODEL
from stages.training import SetupError, cpu_state, live_epochs, load_sets, published, resume_file, run_ranks

PARAMS = ("seed.train", "crop.size", "model", "prototypes", "loss", "train.device", "train.bf16", "train.channels_last",
          "train.balance_classes", "augment", "warmup")
"""The params this stage reads (dvc.yaml lists the same; tests check it): they key its resume file."""


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("warmup", params)
    sets = load_sets(p, ("train", "val"))
    log.info("warmup: %d training and %d validation crops, %d epochs", len(sets["train"]), len(sets["val"]),
             p.warmup.epochs)
    resume = resume_file("warmup", p, PARAMS, (CROPS, NEGATIVES))
    with published(WARMUP_LIVE) as live:
        result = run_ranks("warmup", partial(train, p, live, resume.key, sets if p.train.processes == 1 else None), p)
        if result is None:
            return  # a torchrun rank other than 0

        from fpnpipe.model.build import build_network
        from fpnpipe.model.checkpoint import model_config, save_checkpoint

        model = build_network(p.model, p.prototypes)
        model.load_state_dict(result["state"])
        save_checkpoint(WARMUP_MODEL, model, model_config(p.model, p.prototypes), {"stage": "warmup"})
    resume.clear()
    log.info("warmup: wrote %s and %s", WARMUP_MODEL, WARMUP_LIVE)


def train(p: Params, live: Path | None, key: str, sets: dict | None, dist) -> dict | None:
    """One rank of stage A; returns the trained weights on rank 0."""
    from fpnpipe.config import ConfigError
    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.losses import PrototypeLoss
    from fpnpipe.model.build import build_model
    from fpnpipe.runtime import setup_runtime
    from fpnpipe.train.resume import Resume
    from fpnpipe.train.schedule import run_warmup
    from stages.paths import RESUME_DIR

    sets = sets or load_sets(p, ("train", "val"))  # the caller's copy in a single process
    runtime = setup_runtime(p.train, p.seed.train, dist)
    try:
        model = runtime.prepare(build_model(p.model, p.prototypes, seed=p.seed.train))
    except (ConfigError, ValueError) as exc:
        raise SetupError(str(exc)) from None
    loss_fn = PrototypeLoss.for_model(p.loss, model)
    train_set = CropDataset(sets["train"], p.augment, seed=p.seed.train)
    val_set = CropDataset(sets["val"])
    with live_epochs(live if dist.main else None) as on_epoch:
        run_warmup(model, loss_fn, train_set, val_set, p.warmup, p.train, runtime, p.seed.train, on_epoch,
                   Resume(RESUME_DIR / "warmup.pt", key, dist))
    return {"state": cpu_state(model)} if dist.main else None
