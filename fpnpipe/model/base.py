"""What every model of the registry is: a classifier of grey crops that returns a PrototypeOutput, split into
forward_features / forward_head (after timm), with named parameter groups and a plan saying which training
phase trains which group."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from fpnpipe.model.backbone import VGGBackbone

GROUPS: tuple[str, ...] = ("backbone", "neck", "prototypes", "last_layer")
"""The parameter groups a model may have; the learning-rate params of each training stage are keyed by them."""


class PrototypeOutput(NamedTuple):
    """What every model returns.

    logits: (B, C). similarities: (B, m) pooled prototype similarities (None for a model without prototypes).
    activations: per level of `model.levels`, the raw patch similarity maps (B, m_l, H_l, W_l) over the whole
    crop (empty for a model without prototypes). prototypes: the (m, d) prototype parameter, for the
    orthogonality loss (None without prototypes).
    """

    logits: Tensor
    similarities: Tensor | None = None
    activations: tuple[Tensor, ...] = ()
    prototypes: Tensor | None = None

    @property
    def probabilities(self) -> Tensor:
        """(B, C) softmax of the logits."""
        return self.logits.softmax(dim=1)


@dataclass(frozen=True)
class TrainingPlan:
    """Which parameter groups each training phase trains; every other group is frozen in that phase.

    warmup: stage A (warmup.train_last_layer adds the last layer); joint: stage C's joint epochs;
    last_layer: stage C's last-layer-only phase. Every group of the model must be trained by some phase
    (`check`), so a new group is never frozen silently.
    """

    warmup: tuple[str, ...]
    joint: tuple[str, ...]
    last_layer: tuple[str, ...]

    def check(self, groups: Sequence[str], arch: str) -> None:
        """Raise ValueError if a group is unknown, or trained by no phase, or a phase names a missing group."""
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"model {arch}: parameter groups {unknown} are not among {GROUPS}")
        phases = {"warmup": self.warmup, "joint": self.joint, "last_layer": self.last_layer}
        for phase, names in phases.items():
            missing = sorted(set(names) - set(groups))
            if missing:
                raise ValueError(f"model {arch}: its {phase} phase trains {missing}, which it does not have")
        untrained = sorted(set(groups) - {g for names in phases.values() for g in names})
        if untrained:
            raise ValueError(f"model {arch}: parameter groups {untrained} are trained by no phase")


class ClassifierNet(nn.Module, ABC):
    """Base of every registered model. Input (B, 1, S, S) grey crops in [0, 1]; output PrototypeOutput.

    Class attributes: `training_plan`; `uses_fine_annotation` (whether the fine-annotation term of eq. (4)
    applies). Instance attributes: `arch` (its registry name), `backbone` (the VGG-16 that ImageNet weights
    load into), `num_classes`, `levels` (FPN levels of its activation maps, empty without prototypes).
    """

    training_plan: TrainingPlan
    uses_fine_annotation: bool = False
    arch: str
    backbone: VGGBackbone
    num_classes: int
    levels: tuple[int, ...]

    @abstractmethod
    def forward_features(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 1, S, S) -> the latent maps the head reads, one per level."""

    @abstractmethod
    def forward_head(self, features: Sequence[Tensor]) -> PrototypeOutput:
        """Latent maps -> PrototypeOutput."""

    def forward(self, x: Tensor) -> PrototypeOutput:
        return self.forward_head(self.forward_features(x))

    @abstractmethod
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (a subset of GROUPS), every parameter in exactly one group."""
