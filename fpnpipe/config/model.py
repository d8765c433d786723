"""Params of the network and its objective: model, prototypes, loss."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fpnpipe.classes import CLASSES
from fpnpipe.config.base import Section

PerLevel = tuple[int, int, int, int]
"""One value per FPN level, in the order [level_2, level_3, level_4, level_5]."""

ClassRow = tuple[float, float, float, float]
"""One coefficient per prototype class, in CLASSES order."""


class ModelParams(Section):
    """Architecture. `width` < 1 thins every backbone layer (CPU quickstart; no ImageNet weights then)."""

    arch: Literal["fpn_iaiabl", "iaiabl", "vgg16"] = "fpn_iaiabl"
    backbone: Literal["vgg16"] = "vgg16"
    width: float = Field(0.125, gt=0, le=1)
    pretrained: str | None = None
    fpn_channels: int = Field(64, ge=1, le=4096)
    addon_channels: int = Field(64, ge=1, le=4096)
    incorrect_class_connection: float = Field(-0.5, ge=-10, le=0)


class PrototypesPerClass(Section):
    """Prototype counts per class, each as [level_2, level_3, level_4, level_5]; zero allowed."""

    circumscribed: PerLevel = (2, 2, 2, 2)
    indistinct: PerLevel = (2, 2, 2, 2)
    spiculated: PerLevel = (2, 2, 2, 2)
    negative: PerLevel = (2, 2, 2, 2)

    @field_validator("circumscribed", "indistinct", "spiculated", "negative")
    @classmethod
    def _nonneg(cls, v: PerLevel) -> PerLevel:
        if min(v) < 0:
            raise ValueError(f"prototype counts must be >= 0, got {list(v)}")
        return v

    def counts(self) -> dict[str, PerLevel]:
        return {c: getattr(self, c) for c in CLASSES}


class PrototypeParams(Section):
    """The prototype layer g (paper Section 3.2)."""

    per_class: PrototypesPerClass = PrototypesPerClass()
    top_k: PerLevel = (4, 2, 1, 1)

    @field_validator("top_k")
    @classmethod
    def _k(cls, v: PerLevel) -> PerLevel:
        if min(v) < 1:
            raise ValueError(f"top_k must be >= 1 at every level, got {list(v)}")
        return v


class FineCoefficients(Section):
    """One row per image class: coefficients for each prototype class, in CLASSES order."""

    circumscribed: ClassRow
    indistinct: ClassRow
    spiculated: ClassRow
    negative: ClassRow

    def matrix(self) -> list[list[float]]:
        """(C, C) nested list: rows = image class, columns = prototype class."""
        return [list(getattr(self, c)) for c in CLASSES]


# IAIA-BL's fine-annotation loss: own-class prototypes penalised outside the annotation only, other
# classes' prototypes everywhere; on negative images every margin prototype everywhere.
DEFAULT_FINE_INSIDE = FineCoefficients(
    circumscribed=(0.0, 1.0, 1.0, 1.0),
    indistinct=(1.0, 0.0, 1.0, 1.0),
    spiculated=(1.0, 1.0, 0.0, 1.0),
    negative=(1.0, 1.0, 1.0, 0.0),
)
DEFAULT_FINE_OUTSIDE = FineCoefficients(
    circumscribed=(1.0, 1.0, 1.0, 1.0),
    indistinct=(1.0, 1.0, 1.0, 1.0),
    spiculated=(1.0, 1.0, 1.0, 1.0),
    negative=(1.0, 1.0, 1.0, 0.0),
)


class LossParams(Section):
    """Coefficients of equation (4) and of the last-layer phase."""

    lambda_clust: float = Field(0.8, ge=0)
    lambda_sep: float = Field(0.08, ge=0)
    lambda_ortho: float = Field(0.1, ge=0)
    lambda_fine: float = Field(0.2, ge=0)
    lambda_l1: float = Field(1e-4, ge=0)
    fine_inside: FineCoefficients = DEFAULT_FINE_INSIDE
    fine_outside: FineCoefficients = DEFAULT_FINE_OUTSIDE
