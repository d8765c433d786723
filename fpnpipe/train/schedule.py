"""The training schedule of the paper (Section 4): stage A warm-up with the backbone frozen, and stage C
fine-tuning of all layers, alternating with projection (stage B) and a last-layer-only phase.

No output files and no DVC here: each epoch's metrics go to an `on_epoch` callback (the stages log them
with DVCLive), the state after each epoch to a Resume file (so a killed stage continues where it stopped;
the metrics of the epochs already done are replayed to `on_epoch` first), and the caller saves what comes
back. With several processes (runtime.dist) every rank runs the same schedule on its shares of the batches;
the gradients meet in DistributedDataParallel, and validation and projection in collectives.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fpnpipe.config import FinetuneParams, ProjectParams, Section, TrainParams, WarmupParams
from fpnpipe.data.dataset import Batch, CropDataset, TrainEpoch, batches_in_order, shared_rows
from fpnpipe.inference import predict
from fpnpipe.losses import PrototypeLoss
from fpnpipe.metrics.classification import accuracy, detection_auroc, margin_auroc_table, margin_balanced_accuracy
from fpnpipe.model.build import Model, prototype_network
from fpnpipe.runtime import Runtime
from fpnpipe.train.loop import train_epoch
from fpnpipe.train.optim import build_optimizer, build_scheduler, set_trainable
from fpnpipe.train.progress import TRAIN_WORK, PhaseBar, StageProgress
from fpnpipe.train.projection import NearestPatches, project
from fpnpipe.train.resume import Resume

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, float]], None]


def _tracked(batches: Iterable[Batch], bar: PhaseBar | None) -> Iterator[Batch]:
    for b in batches:
        yield b
        if bar is not None:
            bar.advance(work=len(b.labels))


def validate(
    model: Model, dataset: CropDataset, batch_size: int, runtime: Runtime, progress: StageProgress | None = None
) -> dict[str, float]:
    """Validation figures (NaN where the split cannot give one): the margin AUROC among lesion crops
    (`auroc_average`, the paper's Table 1 figure, and what model selection reads), the detection AUROC
    (lesion vs negative), the four-class accuracy and the margin balanced accuracy among lesions. With
    several processes each predicts its share of the crops and every process gets the same figures."""
    dist = runtime.dist
    rows = shared_rows(len(dataset), batch_size, dist)
    batches = batches_in_order(dataset, rows, batch_size, runtime.device, runtime.channels_last)
    if progress is None:
        probs, labels = predict(model, batches, runtime, num_classes=model.num_classes)
    else:
        with progress.phase("validation", -(-len(rows) // batch_size)) as bar:
            probs, labels = predict(model, _tracked(batches, bar), runtime, num_classes=model.num_classes)
    if dist.active:
        probs = dist.all_gather(torch.from_numpy(probs)).numpy()
        labels = dist.all_gather(torch.from_numpy(labels)).numpy()
    return {
        "auroc_average": margin_auroc_table(labels, probs)["average"],
        "detection_auroc": detection_auroc(labels, probs),
        "accuracy": accuracy(labels, probs),
        "margin_balanced_accuracy": margin_balanced_accuracy(labels, probs),
    }


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


def _cpu_state(model: Model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _restore(model: Model, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any]) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])


def _saved(model: Model, optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int,
           history: list[dict[str, float]]) -> dict[str, Any]:
    return {"epoch": epoch, "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": torch.get_rng_state(),
            "history": history}


def run_warmup(
    model: Model, loss_fn: PrototypeLoss, train_set: CropDataset, val_set: CropDataset, params: WarmupParams,
    train: TrainParams, runtime: Runtime, seed: int, on_epoch: EpochCallback, resume: Resume | None = None,
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
    resume = resume or Resume(None)
    state = resume.load()
    start, history = 0, []
    if state is not None:
        _restore(model, optimizer, scheduler, state)
        start, history = int(state["epoch"]), list(state["history"])
        log.info("warmup: resuming after epoch %d of %d", start, params.epochs)
    for metrics in history:  # the curves of the epochs already done
        on_epoch(metrics)
    forward = runtime.data_parallel(model)
    epoch_work = len(train_set) * TRAIN_WORK + len(val_set)
    with StageProgress("warmup", params.epochs * epoch_work, start * epoch_work) as progress:
        for epoch in range(start, params.epochs):
            loader = TrainEpoch(train_set, params.batch_size, seed, epoch, train.balance_classes, runtime.device,
                                runtime.channels_last, runtime.dist)
            stats = train_epoch(model, loader, loss_fn, optimizer, runtime, progress,
                                f"warmup {epoch + 1}/{params.epochs}", forward=forward)
            if scheduler is not None:
                scheduler.step()
            val = validate(model, val_set, params.batch_size, runtime, progress)
            log.info("warmup epoch %d: loss %.4f, train acc %.3f, val acc %.3f, val margin AUROC %.3f, %.1f img/s",
                     epoch + 1, stats["total"], stats["accuracy"], val["accuracy"], val["auroc_average"],
                     stats["images_per_s"])
            metrics = _epoch_metrics(stats, val)
            on_epoch(metrics)
            history.append(metrics)
            resume.save(_saved(model, optimizer, scheduler, epoch + 1, history))


@dataclass
class FinetuneResult:
    state: dict[str, torch.Tensor]
    """Weights of the selected (projected) model, on the CPU."""
    nearest: NearestPatches | None
    """Where the kept model's prototypes came from (None for a model without prototypes)."""
    epoch: int
    val: dict[str, float]

    def plain(self) -> dict[str, Any]:
        """As plain data (for a resume file)."""
        fields = NearestPatches.__annotations__
        nearest = None if self.nearest is None else {k: getattr(self.nearest, k) for k in fields}
        return {"state": self.state, "nearest": nearest, "epoch": self.epoch, "val": self.val}

    @staticmethod
    def from_plain(data: dict[str, Any] | None) -> FinetuneResult | None:
        if data is None:
            return None
        nearest = None if data["nearest"] is None else NearestPatches(**data["nearest"])
        return FinetuneResult(data["state"], nearest, int(data["epoch"]), dict(data["val"]))


def selection_key(val: dict[str, float]) -> tuple[float, float]:
    """What stage C maximises over its projected models: the validation margin AUROC among lesion crops,
    then the detection AUROC as the tie-break (undefined values count as -1)."""
    return tuple(v if math.isfinite(v) else -1.0 for v in (val["auroc_average"], val["detection_auroc"]))  # type: ignore[return-value]


def projection_epochs(params: FinetuneParams) -> list[int]:
    """The (0-based) joint epochs after which stage C projects: every `project_every`-th and the last."""
    return [e for e in range(params.epochs) if (e + 1) % params.project_every == 0 or e + 1 == params.epochs]


def _finetune_work(params: FinetuneParams, n_train: int, n_push: int, n_val: int, epochs: Iterable[int],
                   has_prototypes: bool) -> float:
    projecting = set(projection_epochs(params))
    last = params.last_layer_epochs if params.last_layer_lr > 0 else 0
    work = 0.0
    for e in epochs:
        work += n_train * TRAIN_WORK + n_val
        if e in projecting:
            work += (n_push if has_prototypes else 0) + last * n_train + n_val
    return work


def run_finetune(
    model: Model, loss_fn: PrototypeLoss, train_set: CropDataset, push_set: CropDataset, val_set: CropDataset,
    params: FinetuneParams, project_params: ProjectParams, train: TrainParams, runtime: Runtime, seed: int,
    on_epoch: EpochCallback, resume: Resume | None = None,
) -> FinetuneResult:
    """Stage C: joint epochs of every layer; after every `project_every`-th epoch and after the last one, a
    projection and a last-layer-only phase. Selection keeps the projected model with the best validation
    margin AUROC among lesion crops (ties: detection AUROC, then the earlier), so the result is always a
    projected model.

    Logged per epoch: train/* (the terms of the joint loss) and val/*; at a projection epoch also
    `projection` (how many projections so far: the curves' projection marks), projected/duplicates and
    projected/displaced (see ProjectionRecord.duplicate_counts), projected/last_layer/* (the last epoch of
    the last-layer phase: its loss terms, among them l1) and projected/val/*."""
    groups = model.param_groups()
    plan = model.training_plan
    joint_lrs = phase_lrs(plan.joint, params.lr, "finetune.lr")
    optimizer = build_optimizer(groups, joint_lrs, params.optimizer)
    scheduler = build_scheduler(optimizer, params.scheduler, params.epochs)
    joint_groups = {g["name"] for g in optimizer.param_groups}
    net = prototype_network(model)
    resume = resume or Resume(None)
    state = resume.load()
    start, history, projections = 0, [], 0
    best: FinetuneResult | None = None
    if state is not None:
        _restore(model, optimizer, scheduler, state)
        start, history, projections = int(state["epoch"]), list(state["history"]), int(state["projections"])
        best = FinetuneResult.from_plain(state["best"])
        log.info("finetune: resuming after epoch %d of %d", start, params.epochs)
    for metrics in history:  # the curves of the epochs already done
        on_epoch(metrics)
    projecting = set(projection_epochs(params))
    sizes = (len(train_set), len(push_set), len(val_set))
    total = _finetune_work(params, *sizes, range(params.epochs), net is not None)
    done = _finetune_work(params, *sizes, range(start), net is not None)
    dist = runtime.dist
    forward_joint = forward_last = None
    with StageProgress("finetune", total, done) as progress:
        for epoch in range(start, params.epochs):
            set_trainable(groups, joint_groups)
            if forward_joint is None:  # DDP takes the parameters that require gradients when it wraps
                forward_joint = runtime.data_parallel(model)
            loader = TrainEpoch(train_set, params.batch_size, seed, 1000 + epoch, train.balance_classes,
                                runtime.device, runtime.channels_last, dist)
            stats = train_epoch(model, loader, loss_fn, optimizer, runtime, progress,
                                f"finetune {epoch + 1}/{params.epochs}", forward=forward_joint)
            if scheduler is not None:
                scheduler.step()
            val = validate(model, val_set, params.batch_size, runtime, progress)
            metrics = _epoch_metrics(stats, val)
            log.info("finetune epoch %d: loss %.4f, train acc %.3f, val acc %.3f, val margin AUROC %.3f, "
                     "%.1f img/s", epoch + 1, stats["total"], stats["accuracy"], val["accuracy"],
                     val["auroc_average"], stats["images_per_s"])
            if epoch in projecting:
                projections += 1
                metrics["projection"] = float(projections)
                nearest = None
                if net is not None:
                    nearest = project(net, push_set, project_params.batch_size, runtime, project_params.distinct,
                                      progress)
                    metrics["projected/duplicates"] = float(_duplicates_in(net, nearest))
                    metrics["projected/displaced"] = float(nearest.displaced.sum())
                if params.last_layer_epochs and params.last_layer_lr > 0:
                    last_lrs = dict.fromkeys(plan.last_layer, params.last_layer_lr)
                    last_opt = build_optimizer(groups, last_lrs, params.optimizer)
                    if forward_last is None:
                        forward_last = runtime.data_parallel(model)
                    for k in range(params.last_layer_epochs):
                        ll_loader = TrainEpoch(train_set, params.batch_size, seed, 5000 + 100 * epoch + k,
                                               train.balance_classes, runtime.device, runtime.channels_last, dist)
                        ll_stats = train_epoch(model, ll_loader, loss_fn, last_opt, runtime, progress,
                                               f"last layer {k + 1}/{params.last_layer_epochs}",
                                               last_layer_only=True, forward=forward_last, work_per_image=1.0)
                    metrics.update({f"projected/last_layer/{k}": v for k, v in ll_stats.items() if k != "images_per_s"})
                val = validate(model, val_set, params.batch_size, runtime, progress)
                metrics.update({f"projected/val/{k}": v for k, v in val.items()})
                log.info("projected model after epoch %d: val acc %.3f, val margin AUROC %.3f", epoch + 1,
                         val["accuracy"], val["auroc_average"])
                if best is None or selection_key(val) > selection_key(best.val):
                    best = FinetuneResult(_cpu_state(model), copy.deepcopy(nearest), epoch + 1, val)
            on_epoch(metrics)
            history.append(metrics)
            saved = _saved(model, optimizer, scheduler, epoch + 1, history)
            saved.update(projections=projections, best=best.plain() if best is not None else None)
            resume.save(saved)
    if best is None:  # unreachable: the last epoch always projects
        raise RuntimeError("fine-tuning ended without a projected model")
    log.info("selected the projected model of epoch %d (val margin AUROC %.3f)", best.epoch, best.val["auroc_average"])
    return best


def _duplicates_in(net, nearest: NearestPatches) -> int:
    """Prototypes sharing their patch (crop and grid cell) with another of their class and level."""
    keys = [(int(c), int(lv), int(s), *(int(v) for v in g)) for c, lv, s, g in
            zip(net.prototype_class.tolist(), net.prototype_level.tolist(), nearest.source, nearest.grid, strict=True)
            if int(s) >= 0]
    return len(keys) - len(set(keys))
