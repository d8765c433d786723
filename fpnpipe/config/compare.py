"""Params of the comparison with the baselines (paper Table 1 and Figure 4): which models are trained beside
FPN-IAIA-BL, what each changes of the shared training sections, and the Figure-4 panels."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from fpnpipe.config.base import Section
from fpnpipe.config.model import IAIABL_FINE_INSIDE, IAIABL_FINE_OUTSIDE

OVERRIDABLE: tuple[str, ...] = ("model", "prototypes", "loss", "augment", "warmup", "project", "finetune")
"""The sections a baseline may change. Everything else (seed, data, crops, split, train, eval) is shared, so
every model sees the same crops, split, seed and test-time settings."""

MAIN_MODEL = "fpn_iaiabl"
"""The name of the main pipeline's model (models/final.pt) in the comparison; no baseline may take it."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")


class BaselineOverrides(Section):
    """What one baseline changes of the shared training sections, as nested mappings merged into them
    (a mapping merges key by key, any other value replaces). The merged params are validated like
    params.yaml itself, so a typo or a bad value names `compare.models.<name>.<key>`.

    The baseline's architecture is `model.arch` if given here, else its name."""

    model: dict[str, Any] = {}
    prototypes: dict[str, Any] = {}
    loss: dict[str, Any] = {}
    augment: dict[str, Any] = {}
    warmup: dict[str, Any] = {}
    project: dict[str, Any] = {}
    finetune: dict[str, Any] = {}

    def changes(self) -> dict[str, dict[str, Any]]:
        """{section: mapping} of the sections this baseline changes."""
        return {name: getattr(self, name) for name in OVERRIDABLE if getattr(self, name)}


def _default_models() -> dict[str, BaselineOverrides]:
    # IAIA-BL pools its conv-5 map by top-k (k = 9 of 14 x 14 cells at 224 px); the quickstart's shared
    # level-5 k is 1 (6 x 6 cells at 96 px, 4 x 4 inside the border), which would make it max pooling, i.e.
    # ProtoPNet's: k = 2 keeps the two baselines' pooling apart. It trains with IAIA-BL's fine-annotation
    # coefficients (at the earlier default weight 1), not FPN-IAIA-BL's.
    return {
        "vgg16": BaselineOverrides(),
        "protopnet": BaselineOverrides(),
        "iaiabl": BaselineOverrides(
            prototypes={"top_k": [4, 2, 1, 2]},
            loss={"lambda_fine": 1.0, "fine_inside": {c: list(v) for c, v in IAIABL_FINE_INSIDE.items()},
                  "fine_outside": {c: list(v) for c, v in IAIABL_FINE_OUTSIDE.items()}}),
    }


class CompareParams(Section):
    """The comparison (`dvc repro stages/compare/dvc.yaml`).

    models: {name: overrides}: the baselines trained beside FPN-IAIA-BL, one DVC stage each
        (stages/compare/dvc.yaml: train@<name>), outputs under models/compare/<name>/ and
        reports/compare/models/<name>/.
        A name is lower-case letters, digits and underscores; it is the architecture unless the overrides
        set model.arch (e.g. two iaiabl variants under two names).
    saliency_model: the baseline whose GradCAM and GradCAM++ maps are computed (a name in `models`).
    figure_cases: annotated test lesions drawn in the Figure-4 style panels (chosen in turn from each margin
        class, by image id); dpi: their resolution.
    """

    models: dict[str, BaselineOverrides] = Field(default_factory=_default_models)
    saliency_model: str = "vgg16"
    figure_cases: int = Field(6, ge=0, le=1000)
    dpi: int = Field(100, ge=50, le=600)

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, BaselineOverrides]) -> dict[str, BaselineOverrides]:
        for name in v:
            if name == MAIN_MODEL:
                raise ValueError(f"{name!r} is the main pipeline's model (models/final.pt); give a variant another "
                                 "name and set its model.arch")
            if not _NAME.fullmatch(name):
                raise ValueError(f"model name {name!r} must be 1-40 lower-case letters, digits or underscores "
                                 "(it names a DVC stage and folders)")
        return v

    @model_validator(mode="after")
    def _saliency_model_is_compared(self) -> CompareParams:
        if self.saliency_model not in self.models:
            raise ValueError(f"saliency_model {self.saliency_model!r} is not among compare.models "
                             f"({', '.join(self.models) or 'none'})")
        return self
