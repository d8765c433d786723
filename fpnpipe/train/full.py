"""Stages A, B and C in one call, for a model trained by one pipeline stage (the baselines of the comparison):
the same library functions, in the same order and with the same seeding, as the warmup, project and finetune
stages run them one after the other."""

from __future__ import annotations

from collections.abc import Callable

from fpnpipe.config import Params
from fpnpipe.data.dataset import CropDataset
from fpnpipe.data.schema import CropSet
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.build import Model, prototype_network
from fpnpipe.runtime import Runtime, seed_everything
from fpnpipe.train.projection import project
from fpnpipe.train.schedule import FinetuneResult, run_finetune, run_warmup

PhaseCallback = Callable[[str, dict[str, float]], None]
"""on_epoch(phase, metrics): phase is "warmup" or "finetune"; metrics as the stages log them with DVCLive."""


def train_model(
    model: Model, params: Params, train: CropSet, val: CropSet, runtime: Runtime, on_epoch: PhaseCallback
) -> FinetuneResult:
    """Warm-up (run_warmup), projection (project, for a model with prototypes, as `prototype_network` says)
    and fine-tuning (run_finetune) of a freshly built `model` on the `train` crops, selecting on `val`.

    Each phase starts from the global generators seeded with params.seed.train, as each stage does when it
    starts. On return the model holds the selected (projected) weights, which the result also carries."""
    seed = params.seed.train
    loss_fn = PrototypeLoss.for_model(params.loss, model)
    train_set = CropDataset(train, params.augment, seed=seed)
    push_set = CropDataset(train)
    val_set = CropDataset(val)
    run_warmup(model, loss_fn, train_set, val_set, params.warmup, params.train, runtime, seed,
               lambda metrics: on_epoch("warmup", metrics))
    seed_everything(seed)
    net = prototype_network(model)
    if net is not None:
        project(net, push_set, params.project.batch_size, runtime, params.project.distinct)
    seed_everything(seed)
    result = run_finetune(model, loss_fn, train_set, push_set, val_set, params.finetune, params.project, params.train,
                          runtime, seed, lambda metrics: on_epoch("finetune", metrics))
    model.load_state_dict(result.state)
    return result
