"""One epoch of training, in one process or as one of several (DistributedDataParallel).

With several processes each computes the loss on its share of every global batch, scaled so that the
gradients DDP averages over the processes add up to the gradient of the whole batch in one process: a term
averaged over the batch (cross entropy, cluster, separation) is weighted by share size / batch size, the
fine-annotation term, averaged over the annotated crops, by annotated in the share / annotated in the batch,
and a term that does not depend on the batch (orthogonality, L1) by 1 / processes; the sum is multiplied by
the number of processes, which DDP's averaging divides back out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from fpnpipe.data.dataset import Shard, TrainEpoch
from fpnpipe.losses import LossTerms, PrototypeLoss
from fpnpipe.model.build import Model
from fpnpipe.runtime import Runtime
from fpnpipe.train.progress import StageProgress

NORMALISATION: dict[str, str] = {
    "ce": "batch", "clust": "batch", "sep": "batch", "fine": "annotated", "ortho": "none", "l1": "none",
}
"""How fpnpipe.losses normalises each term of LossTerms: a mean over the batch's crops, a mean over its
annotated crops, or independent of the batch. Every term but `total` must be listed (tests check it)."""


def joint_lambdas(loss_fn: PrototypeLoss) -> dict[str, float]:
    """The weight of each term in equation (4) (PrototypeLoss.forward), 0 for a term that does not apply."""
    p = loss_fn.params
    proto = loss_fn.has_prototypes
    return {
        "ce": 1.0,
        "clust": p.lambda_clust if proto else 0.0,
        "sep": p.lambda_sep if proto else 0.0,
        "ortho": p.lambda_ortho if proto and loss_fn.orthogonality else 0.0,
        "fine": p.lambda_fine if proto and loss_fn.fine_annotation else 0.0,
        "l1": 0.0,
    }


def last_layer_lambdas(loss_fn: PrototypeLoss) -> dict[str, float]:
    """The weight of each term in the last-layer phase's loss (PrototypeLoss.last_layer_loss)."""
    return {"ce": 1.0, "clust": 0.0, "sep": 0.0, "ortho": 0.0, "fine": 0.0,
            "l1": loss_fn.params.lambda_l1 if loss_fn.has_prototypes else 0.0}


def logged_terms(loss_fn: PrototypeLoss, last_layer_only: bool) -> tuple[str, ...]:
    """The terms a phase reports: those that are part of its loss for this model (so `l1` only in the
    last-layer phase, `ortho` only where the similarity uses it), plus `total`."""
    if last_layer_only:
        return ("total", "ce", "l1") if loss_fn.has_prototypes else ("total", "ce")
    if not loss_fn.has_prototypes:
        return ("total", "ce")
    names = ["total", "ce", "clust", "sep"]
    if loss_fn.orthogonality:
        names.append("ortho")
    if loss_fn.fine_annotation:
        names.append("fine")
    return tuple(names)


def share_weight(kind: str, shard: Shard) -> float:
    """The share of the global batch's value of a term of normalisation `kind` that this process holds."""
    if kind == "batch":
        return shard.size / shard.global_size
    if kind == "annotated":
        return shard.annotated / shard.global_annotated if shard.global_annotated else 0.0
    return 1.0 / shard.world


def rank_objective(terms: LossTerms, logits: torch.Tensor, lambdas: Mapping[str, float], shard: Shard) -> torch.Tensor:
    """What this process back-propagates (see the module docstring); terms.total in a single process.

    A share without crops (its batch-mean terms are NaN) contributes only its batch-free terms; the zero
    times the logits keeps every parameter in the graph, as DDP requires."""
    if shard.world == 1:
        return terms.total
    total = logits.float().sum() * 0.0
    for name, lam in lambdas.items():
        weight = share_weight(NORMALISATION[name], shard)
        if lam and weight:
            total = total + lam * weight * getattr(terms, name)
    return total * shard.world


def train_epoch(
    model: Model,
    loader: TrainEpoch,
    loss_fn: PrototypeLoss,
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    progress: StageProgress,
    description: str,
    last_layer_only: bool = False,
    forward: nn.Module | None = None,
    work_per_image: float = 3.0,
) -> dict[str, float]:
    """One pass over `loader` (this process's shares of the epoch's global batches).

    forward: what to call the model through (a DistributedDataParallel wrapper; default the model).
    Returns, over the whole epoch and every process, the mean of each term the phase reports
    (`logged_terms`: each global batch's value, weighted by its size), the training accuracy and images/s.
    `last_layer_only` uses the last-layer phase's loss (CE + L1 on wrong-class weights)."""
    model.train()
    net = forward if forward is not None else model
    objective: Callable[..., LossTerms]
    if last_layer_only:
        objective = lambda out, b: loss_fn.last_layer_loss(out, b.labels, model)  # noqa: E731
        lambdas = last_layer_lambdas(loss_fn)
    else:
        objective = lambda out, b: loss_fn(out, b.labels, b.fine, b.has_fine)  # noqa: E731
        lambdas = joint_lambdas(loss_fn)
    names = logged_terms(loss_fn, last_layer_only)
    # per term: sum over global batches of (global batch size x this process's share of the batch's value)
    sums = torch.zeros(len(names) + 2, dtype=torch.float64)  # + correct predictions, images seen
    seen = 0  # images of the global batches so far (every process walks every global batch)
    start = time.perf_counter()
    with progress.phase(description, len(loader), "loss {loss:.4f}  {speed:.1f} img/s",
                        loss=float("nan"), speed=0.0) as bar:
        for b, shard in loader:
            with runtime.autocast():
                out = net(b.images)
                terms = objective(out, b)
            optimizer.zero_grad(set_to_none=True)
            rank_objective(terms, out.logits, lambdas, shard).backward()
            optimizer.step()
            values = _shard_values(terms, names, lambdas, shard)
            correct = float((out.logits.detach().argmax(1) == b.labels).sum()) if shard.size else 0.0
            sums += torch.tensor([*(v * shard.global_size for v in values), correct, shard.size], dtype=torch.float64)
            seen += shard.global_size
            # shown: this process's estimate (exact in one process); returned: the exact sums over processes
            bar.advance(work=shard.global_size * work_per_image, loss=float(sums[0]) * shard.world / max(seen, 1),
                        speed=seen / max(time.perf_counter() - start, 1e-9))
    total = runtime.dist.all_sum(sums)
    images = float(total[-1])
    stats = {name: float(total[k]) / max(images, 1) for k, name in enumerate(names)}
    stats["accuracy"] = float(total[-2]) / max(images, 1)
    stats["images_per_s"] = images / max(time.perf_counter() - start, 1e-9)
    return stats


def _shard_values(terms: LossTerms, names: tuple[str, ...], lambdas: Mapping[str, float], shard: Shard) -> list[float]:
    """This process's share of the global batch's value of each reported term (summed over the processes
    they give the global value); `total` = the global objective's share."""
    values: list[float] = []
    total = 0.0
    for name in names[1:]:
        weight = share_weight(NORMALISATION[name], shard)
        value = float(getattr(terms, name).detach()) * weight if weight else 0.0
        values.append(value)
    for name, lam in lambdas.items():
        weight = share_weight(NORMALISATION[name], shard)
        if lam and weight:
            total += lam * weight * float(getattr(terms, name).detach())
    if shard.world == 1:
        total = float(terms.total.detach())
    return [total, *values]
