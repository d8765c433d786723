"""Params of the network and its objective: model, prototypes, loss."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fpnpipe.classes import CLASSES, FPN_LEVELS
from fpnpipe.config.base import Section
from fpnpipe.model.registry import ARCHITECTURES

PerLevel = tuple[int, int, int, int]
"""One value per FPN level, in the order [level_2, level_3, level_4, level_5]."""

Coefficient = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]
ClassRow = tuple[Coefficient, Coefficient, Coefficient, Coefficient]
"""One coefficient per prototype class, in CLASSES order."""

Lambda = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ModelParams(Section):
    """Architecture.

    arch: a registered architecture (fpnpipe/model/registry.py): fpn_iaiabl (the paper), iaiabl
    (single-scale baseline on the conv-5 map), protopnet (iaiabl with max pooling and no fine-annotation
    loss) or vgg16 (black box).
    width: channel multiplier of every backbone layer; < 1 is the CPU quickstart. Such a thinner VGG-16 has
    other tensor shapes than torchvision's, so it cannot take ImageNet weights (`pretrained` must be null).
    pretrained: path to a local file holding torchvision's VGG-16 ImageNet state dict; null = random init.
    fpn_channels: d, the feature dimension of every FPN level and of the fpn_iaiabl prototypes.
    addon_channels: d of the iaiabl baseline's add-on layers and prototypes.
    """

    arch: str = "fpn_iaiabl"
    backbone: Literal["vgg16"] = "vgg16"
    width: float = Field(0.125, gt=0, le=1)
    pretrained: str | None = None
    fpn_channels: int = Field(64, ge=1, le=4096)
    addon_channels: int = Field(64, ge=1, le=4096)
    incorrect_class_connection: float = Field(-0.5, ge=-10, le=0)

    @field_validator("arch")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {v!r}; registered: {', '.join(ARCHITECTURES)}")
        return v

    @field_validator("pretrained")
    @classmethod
    def _pretrained_needs_full_width(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("must be a file path or null")
        width = info.data.get("width")
        if width is not None and width != 1.0:
            raise ValueError(
                f"ImageNet weights fit only the full-width VGG-16 (model.width: 1.0), but model.width is {width}; "
                "set model.pretrained: null or model.width: 1.0"
            )
        return v


class PrototypesPerClass(Section):
    """Prototype counts per class, each as [level_2, level_3, level_4, level_5]; zero allowed.

    Every class needs at least one prototype at some level (a class without prototypes can be neither
    clustered nor predicted); a level may have no prototypes for any class."""

    circumscribed: PerLevel = (2, 2, 2, 2)
    indistinct: PerLevel = (2, 2, 2, 2)
    spiculated: PerLevel = (2, 2, 2, 2)
    negative: PerLevel = (2, 2, 2, 2)

    @field_validator("circumscribed", "indistinct", "spiculated", "negative")
    @classmethod
    def _nonneg(cls, v: PerLevel) -> PerLevel:
        if min(v) < 0 or max(v) > 4096:
            raise ValueError(f"prototype counts must lie in [0, 4096], got {list(v)}")
        return v

    @model_validator(mode="after")
    def _every_class_has_one(self) -> PrototypesPerClass:
        empty = [c for c in CLASSES if sum(getattr(self, c)) == 0]
        if empty:
            raise ValueError(
                f"class {', '.join(empty)} has no prototype at any level; every class needs at least one"
            )
        return self

    def counts(self) -> dict[str, PerLevel]:
        return {c: getattr(self, c) for c in CLASSES}

    def per_level(self) -> dict[int, tuple[int, ...]]:
        """{level: counts per class in CLASSES order} for every FPN level."""
        return {level: tuple(getattr(self, c)[i] for c in CLASSES) for i, level in enumerate(FPN_LEVELS)}


def border_cells(border_fraction: float, cells: int) -> int:
    """Edge cells left out on each side of a map `cells` wide: cell i is centred at (i + 0.5) / cells of the
    crop side, and cells centred within `border_fraction` of the side from an edge are left out."""
    return max(0, math.ceil(border_fraction * cells - 0.5))


class PrototypeParams(Section):
    """The prototype layer g (paper Section 3.2).

    top_k: k of the top-k average pooling at each FPN level; the iaiabl baseline uses the level-5 value.
    similarity: `focal` = equation (3), top-k mean minus the mean over the map (ProtoPool's focal
    similarity); `topk` = the top-k mean alone (IAIA-BL's pooling applied to the cosine maps). The iaiabl
    baseline always uses IAIA-BL's log-distance similarity with top-k pooling and ignores this key.
    border_fraction: patches whose centre lies within this fraction of the crop side from its edge take no
    part in pooling or projection (0 = every patch, as in the paper, and the default). It hid a symptom of
    uncentred latent maps (see center_latent): with them, zero padding and crop framing were what set patches
    apart, so prototypes fired on the crop's edges.
    """

    per_class: PrototypesPerClass = PrototypesPerClass()
    top_k: PerLevel = (4, 2, 1, 1)
    similarity: Literal["focal", "topk"] = "focal"
    border_fraction: float = Field(0.0, ge=0, lt=0.5)
    center_latent: bool = True
    """fpn_iaiabl: compare the prototypes with each latent map minus its own mean patch (per image and
    channel) instead of the map itself (false = eq. 2 as printed). Latent features computed from non-negative
    backbone maps share a large common part, so a cosine of raw patches mostly says how much of that common
    part a patch carries, which zero padding and crop framing change most. iaiabl and protopnet ignore it."""

    @field_validator("top_k")
    @classmethod
    def _k(cls, v: PerLevel) -> PerLevel:
        if min(v) < 1:
            raise ValueError(f"top_k must be >= 1 at every level, got {list(v)}")
        return v


class FineCoefficients(Section):
    """One row per image class: coefficients for each prototype class, in CLASSES order.

    A positive coefficient penalises activation, a negative one rewards it, zero ignores it."""

    circumscribed: ClassRow
    indistinct: ClassRow
    spiculated: ClassRow
    negative: ClassRow

    def matrix(self) -> list[list[float]]:
        """(C, C) nested list: rows = image class, columns = prototype class."""
        return [list(getattr(self, c)) for c in CLASSES]


IAIABL_FINE_INSIDE: dict[str, tuple[float, ...]] = {
    "circumscribed": (0.0, 1.0, 1.0, 1.0), "indistinct": (1.0, 0.0, 1.0, 1.0),
    "spiculated": (1.0, 1.0, 0.0, 1.0), "negative": (1.0, 1.0, 1.0, 0.0)}
IAIABL_FINE_OUTSIDE: dict[str, tuple[float, ...]] = {
    "circumscribed": (1.0, 1.0, 1.0, 1.0), "indistinct": (1.0, 1.0, 1.0, 1.0),
    "spiculated": (1.0, 1.0, 1.0, 1.0), "negative": (1.0, 1.0, 1.0, 0.0)}
"""IAIA-BL's fine-annotation loss as coefficient rows (image class -> prototype classes in CLASSES order):
own-class prototypes free inside the annotation and penalised outside it, other classes' prototypes
penalised everywhere; on negative images (empty annotation) every margin prototype everywhere. The iaiabl
baseline of the comparison trains with them (compare.models.iaiabl in params.yaml)."""


# The defaults (README, "Why the prototypes fired on the crop's edges"): the paper's generalisation of
# IAIA-BL's loss with a negative coefficient that rewards an own-class prototype's activation inside the
# annotation, and other classes' prototypes penalised at 0.1 rather than 1 (measured on the quickstart).
# Each default row lives in its own subclass, so a params file may override a single row.
class FineInsideCoefficients(FineCoefficients):
    """Coefficients for activation inside the fine annotation (defaults: own class -2, others 0.1)."""

    circumscribed: ClassRow = (-2.0, 0.1, 0.1, 0.1)
    indistinct: ClassRow = (0.1, -2.0, 0.1, 0.1)
    spiculated: ClassRow = (0.1, 0.1, -2.0, 0.1)
    negative: ClassRow = (0.1, 0.1, 0.1, 0.0)


class FineOutsideCoefficients(FineCoefficients):
    """Coefficients for activation outside the fine annotation (defaults: own class 1, others 0.1)."""

    circumscribed: ClassRow = (1.0, 0.1, 0.1, 0.1)
    indistinct: ClassRow = (0.1, 1.0, 0.1, 0.1)
    spiculated: ClassRow = (0.1, 0.1, 1.0, 0.1)
    negative: ClassRow = (0.1, 0.1, 0.1, 0.0)


DEFAULT_FINE_INSIDE = FineInsideCoefficients()
DEFAULT_FINE_OUTSIDE = FineOutsideCoefficients()


class LossParams(Section):
    """Coefficients of equation (4) (lambda_clust .. lambda_fine) and of the last-layer phase (lambda_l1).

    fine_inside / fine_outside: (image class x prototype class) coefficients of the fine-annotation loss
    for activation inside / outside the fine annotation."""

    lambda_clust: Lambda = 0.8
    lambda_sep: Lambda = 0.4
    lambda_ortho: Lambda = 0.1
    lambda_fine: Lambda = 30.0
    lambda_l1: Lambda = 1e-4
    cluster_similarity: Literal["patch", "pooled"] = "patch"
    """Similarity the cluster and separation costs take: `patch` = each prototype's best patch similarity
    (max over its map, Deformable ProtoPNet's max-pooled cosine), which pulls prototypes onto real latent
    patches so that projection changes little; `pooled` = the pooled similarity of the logits (eq. 3)."""
    fine_activation: Literal["relative", "absolute"] = "relative"
    """What the fine-annotation loss counts as activation: `relative` = each patch similarity minus its
    map's mean (the quantity eq. (3) pools; shifting a whole map cannot hide activation), or `absolute` =
    the patch similarity itself (IAIA-BL's form)."""
    fine_inside: FineInsideCoefficients = DEFAULT_FINE_INSIDE
    fine_outside: FineOutsideCoefficients = DEFAULT_FINE_OUTSIDE
