"""The training schedule of the paper (Section 4): stage A warm-up with the backbone frozen, and stage C
fine-tuning of all layers, alternating with projection (stage B) and a last-layer-only phase.

No files and no DVC here: each epoch's metrics go to an `on_epoch` callback (the stages log them with
DVCLive), and the caller saves what comes back.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from fpnpipe.config import FinetuneParams, Section, TrainParams, WarmupParams
from fpnpipe.data.dataset import CropDataset, make_loader
from fpnpipe.inference import predict
from fpnpipe.losses import PrototypeLoss
from fpnpipe.metrics.classification import accuracy, detection_auroc, margin_auroc_table, margin_balanced_accuracy
from fpnpipe.model.build import Model, prototype_network
from fpnpipe.runtime import Runtime
from fpnpipe.train.loop import train_epoch
from fpnpipe.train.optim import build_optimizer, build_scheduler, set_trainable
from fpnpipe.train.projection import NearestPatches, project

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


def validate(model: Model, loader: DataLoader, runtime: Runtime) -> dict[str, float]:
    """Validation figures (NaN where the split cannot give one): the margin AUROC among lesion crops
    (`auroc_average`, the paper's Table 1 figure, and what model selection reads), the detection AUROC
    (lesion vs negative), the four-class accuracy and the margin balanced accuracy among lesions."""
    probs, labels = predict(model, loader, runtime)
    return {
        "auroc_average": margin_auroc_table(labels, probs)["average"],
        "detection_auroc": detection_auroc(labels, probs),
        "accuracy": accuracy(labels, probs),
        "margin_balanced_accuracy": margin_balanced_accuracy(labels, probs),
    }


def _loaders(dataset: CropDataset, batch_size: int, train: TrainParams, runtime: Runtime, seed: int, epoch: int,
             shuffle: bool) -> DataLoader:
    return make_loader(dataset, batch_size, shuffle=shuffle, seed=seed, epoch=epoch, num_workers=train.num_workers,
                       pin_memory=runtime.pin_memory, balance=shuffle and train.balance_classes)


def _epoch_metrics(stats: dict[str, float], val: dict[str, float], prefix: str = "") -> dict[str, float]:
    out = {f"{prefix}train/{k}": v for k, v in stats.items() if k != "images_per_s"}
    out.update({f"{prefix}val/{k}": v for k, v in val.items()})
    return out


def phase_lrs(groups: Sequence[str], lr: Section, section: str) -> dict[str, float]:
    """{group: learning rate} for the groups a training phase trains, read from the `lr` params section
    named `section` (e.g. "warmup.lr"); ValueError naming the missing keys if a group has none."""
    missing = [g for g in groups if g not in type(lr).model_fields]
    if missing:
        raise ValueError(f"{section} has no learning rate for parameter group(s) {missing} that this model trains")
    return {g: float(getattr(lr, g)) for g in groups}


def run_warmup(
    model: Model, loss_fn: PrototypeLoss, train_set: CropDataset, val_set: CropDataset, params: WarmupParams,
    train: TrainParams, runtime: Runtime, seed: int, on_epoch: EpochCallback,
) -> None:
    """Stage A on equation (4): the groups of the model's training plan for warm-up (the backbone frozen:
    for the prototype models the neck and the prototypes), plus the last layer if `train_last_layer`."""
    groups = model.param_groups()
    names = model.training_plan.warmup
    if params.train_last_layer and "last_layer" not in names:
        names = (*names, "last_layer")
    lrs = phase_lrs(names, params.lr, "warmup.lr")
    optimizer = build_optimizer(groups, lrs, params.optimizer)
    scheduler = build_scheduler(optimizer, params.scheduler, params.epochs)
    val_loader = _loaders(val_set, params.batch_size, train, runtime, seed, 0, shuffle=False)
    for epoch in range(params.epochs):
        loader = _loaders(train_set, params.batch_size, train, runtime, seed, epoch, shuffle=True)
        stats = train_epoch(model, loader, loss_fn, optimizer, runtime, f"warmup {epoch + 1}/{params.epochs}")
        if scheduler is not None:
            scheduler.step()
        val = validate(model, val_loader, runtime)
        log.info("warmup epoch %d: loss %.4f, train acc %.3f, val acc %.3f, val margin AUROC %.3f, %.1f img/s",
                 epoch + 1, stats["total"], stats["accuracy"], val["accuracy"], val["auroc_average"],
                     stats["images_per_s"])
        on_epoch(_epoch_metrics(stats, val))


@dataclass
class FinetuneResult:
    state: dict[str, torch.Tensor]
    """Weights of the selected (projected) model, on the CPU."""
    nearest: NearestPatches | None
    """Where the kept model's prototypes came from (None for a model without prototypes)."""
    epoch: int
    val: dict[str, float]


def selection_key(val: dict[str, float]) -> tuple[float, float]:
    """What stage C maximises over its projected models: the validation margin AUROC among lesion crops,
    then the detection AUROC as the tie-break (undefined values count as -1)."""
    return tuple(v if math.isfinite(v) else -1.0 for v in (val["auroc_average"], val["detection_auroc"]))  # type: ignore[return-value]


def run_finetune(
    model: Model, loss_fn: PrototypeLoss, train_set: CropDataset, push_set: CropDataset, val_set: CropDataset,
    params: FinetuneParams, project_batch_size: int, train: TrainParams, runtime: Runtime, seed: int,
    on_epoch: EpochCallback,
) -> FinetuneResult:
    """Stage C: joint epochs of every layer; after every `project_every`-th epoch and after the last one, a
    projection and a last-layer-only phase. Selection keeps the projected model with the best validation
    margin AUROC among lesion crops (ties: detection AUROC, then the earlier), so the result is always a
    projected model."""
    groups = model.param_groups()
    plan = model.training_plan
    joint_lrs = phase_lrs(plan.joint, params.lr, "finetune.lr")
    optimizer = build_optimizer(groups, joint_lrs, params.optimizer)
    scheduler = build_scheduler(optimizer, params.scheduler, params.epochs)
    joint_groups = {g["name"] for g in optimizer.param_groups}
    val_loader = _loaders(val_set, params.batch_size, train, runtime, seed, 0, shuffle=False)
    best: FinetuneResult | None = None
    net = prototype_network(model)
    for epoch in range(params.epochs):
        set_trainable(groups, joint_groups)
        loader = _loaders(train_set, params.batch_size, train, runtime, seed, 1000 + epoch, shuffle=True)
        stats = train_epoch(model, loader, loss_fn, optimizer, runtime, f"finetune {epoch + 1}/{params.epochs}")
        if scheduler is not None:
            scheduler.step()
        val = validate(model, val_loader, runtime)
        metrics = _epoch_metrics(stats, val)
        log.info("finetune epoch %d: loss %.4f, train acc %.3f, val acc %.3f, val margin AUROC %.3f, %.1f img/s",
                 epoch + 1, stats["total"], stats["accuracy"], val["accuracy"], val["auroc_average"],
                     stats["images_per_s"])
        last = epoch + 1 == params.epochs
        if (epoch + 1) % params.project_every == 0 or last:
            nearest = project(net, push_set, project_batch_size, runtime, train.num_workers) if net else None
            if params.last_layer_epochs and params.last_layer_lr > 0:
                last_lrs = dict.fromkeys(plan.last_layer, params.last_layer_lr)
                last_opt = build_optimizer(groups, last_lrs, params.optimizer)
                for k in range(params.last_layer_epochs):
                    ll_loader = _loaders(train_set, params.batch_size, train, runtime, seed, 5000 + 100 * epoch + k,
                                         True)
                    train_epoch(model, ll_loader, loss_fn, last_opt, runtime,
                                f"last layer {k + 1}/{params.last_layer_epochs}", last_layer_only=True)
            val = validate(model, val_loader, runtime)
            metrics.update({f"projected/val/{k}": v for k, v in val.items()})
            log.info("projected model after epoch %d: val acc %.3f, val margin AUROC %.3f", epoch + 1, val["accuracy"],
                     val["auroc_average"])
            if best is None or selection_key(val) > selection_key(best.val):
                state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best = FinetuneResult(state, copy.deepcopy(nearest), epoch + 1, val)
        on_epoch(metrics)
    if best is None:  # unreachable: the last epoch always projects
        raise RuntimeError("fine-tuning ended without a projected model")
    log.info("selected the projected model of epoch %d (val margin AUROC %.3f)", best.epoch, best.val["auroc_average"])
    return best
