"""One epoch of training."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader

from fpnpipe.data.dataset import Batch
from fpnpipe.log import progress
from fpnpipe.losses import LossTerms, PrototypeLoss
from fpnpipe.model.build import Model
from fpnpipe.runtime import Runtime

TERMS = ("total", "ce", "clust", "sep", "ortho", "fine", "l1")


def train_epoch(
    model: Model,
    loader: DataLoader,
    loss_fn: PrototypeLoss,
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    description: str,
    last_layer_only: bool = False,
) -> dict[str, float]:
    """One pass over `loader`. Returns the sample-weighted mean of each loss term, the training accuracy and
    images/s. `last_layer_only` uses the last-layer phase's loss (CE + L1 on wrong-class weights)."""
    model.train()
    objective: Callable[..., LossTerms]
    if last_layer_only:
        objective = lambda out, b: loss_fn.last_layer_loss(out, b.labels, model)  # noqa: E731
    else:
        objective = lambda out, b: loss_fn(out, b.labels, b.fine, b.has_fine)  # noqa: E731
    sums = dict.fromkeys(TERMS, 0.0)
    correct = seen = 0
    start = time.perf_counter()
    with progress("loss {task.fields[loss]:.4f}  {task.fields[speed]:.1f} img/s") as bar:
        task = bar.add_task(description, total=len(loader), loss=float("nan"), speed=0.0)
        for batch in loader:
            b: Batch = batch.to(runtime.device, runtime.channels_last)
            with runtime.autocast():
                out = model(b.images)
                terms = objective(out, b)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            n = b.labels.shape[0]
            for name, value in zip(TERMS, terms, strict=True):
                sums[name] += float(value.detach()) * n
            correct += int((out.logits.detach().argmax(1) == b.labels).sum())
            seen += n
            speed = seen / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, loss=sums["total"] / seen, speed=speed)
    stats = {name: total / max(seen, 1) for name, total in sums.items()}
    stats["accuracy"] = correct / max(seen, 1)
    stats["images_per_s"] = seen / max(time.perf_counter() - start, 1e-9)
    return stats
