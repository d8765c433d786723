"""Optimizers with one learning rate per named parameter group, and their schedulers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fpnpipe.config.train import OptimizerParams, SchedulerParams


def set_trainable(groups: Mapping[str, list[nn.Parameter]], trainable: set[str]) -> None:
    """requires_grad = True for the parameters of the named groups, False for all others."""
    for name, params in groups.items():
        for p in params:
            p.requires_grad_(name in trainable)


def build_optimizer(
    groups: Mapping[str, list[nn.Parameter]], lrs: Mapping[str, float], params: OptimizerParams
) -> torch.optim.Optimizer:
    """One optimizer param group per named group in `lrs` (groups with lr 0 or no parameters are frozen
    and left out). Raises ValueError naming a group the model does not have."""
    unknown = sorted(set(lrs) - set(groups))
    if unknown:
        raise ValueError(f"learning rates given for {unknown}, but the model's groups are {sorted(groups)}")
    trainable = {name for name, lr in lrs.items() if lr > 0 and groups[name]}
    set_trainable(groups, trainable)
    param_groups = [{"params": groups[n], "lr": lrs[n], "name": n} for n in lrs if n in trainable]
    if not param_groups:
        raise ValueError("no parameter group has a positive learning rate")
    if params.name == "sgd":
        return torch.optim.SGD(param_groups, momentum=params.momentum, weight_decay=params.weight_decay)
    if params.name == "adamw":
        return torch.optim.AdamW(param_groups, weight_decay=params.weight_decay)
    return torch.optim.Adam(param_groups, weight_decay=params.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, params: SchedulerParams, epochs: int):
    """Per-epoch scheduler (call .step() once per epoch), or None."""
    if params.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=params.step_size, gamma=params.gamma)
    if params.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return None
