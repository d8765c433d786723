"""Typed, validated params (params.yaml). Stages load them with `load_params` before doing any work.

An unknown key, a value of the wrong type or a value out of range raises ConfigError, whose message
names the file and the dotted key, e.g. ``params.yaml: loss.lambda_fine: Input should be >= 0 (got -1)``.
Constraints that join sections (the prototype top-k and border against the FPN map sizes that crop.size
gives) are checked by the top-level model, so they too stop a stage before any work. An empty params file
(nothing, only comments, or null) is an error, not "all defaults".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fpnpipe.classes import FPN_LEVELS, FPN_STRIDES
from fpnpipe.config.base import ConfigError, Section
from fpnpipe.config.compare import MAIN_MODEL, BaselineOverrides, CompareParams
from fpnpipe.config.data import (
    CbisParams,
    CropParams,
    DataParams,
    NegativesParams,
    PreprocessParams,
    SplitParams,
    SynthParams,
    raw_dir_problem,
)
from fpnpipe.config.model import LossParams, ModelParams, PrototypeParams, border_cells
from fpnpipe.config.report import EvalParams, ExplainParams
from fpnpipe.config.train import (
    AugmentParams,
    FinetuneParams,
    ProjectParams,
    TrainParams,
    WarmupParams,
)
from fpnpipe.model.registry import ARCHITECTURES

__all__ = [
    "MAIN_MODEL",
    "AugmentParams",
    "BaselineOverrides",
    "CbisParams",
    "CompareParams",
    "ConfigError",
    "CropParams",
    "DataParams",
    "EvalParams",
    "ExplainParams",
    "FinetuneParams",
    "LossParams",
    "ModelParams",
    "NegativesParams",
    "Params",
    "PreprocessParams",
    "ProjectParams",
    "PrototypeParams",
    "Section",
    "SplitParams",
    "SynthParams",
    "TrainParams",
    "WarmupParams",
    "load_params",
    "parse_params",
    "prototype_map_problems",
    "raw_dir_problem",
]


class SeedParams(Section):
    """Two seeds, so that a sweep over training seeds keeps the data, the split and the test set fixed.

    data: the synthetic phantoms (synth), the patient-level split (preprocess) and the negative patches
    (negatives). train: initial weights, the order and class balance of each epoch, augmentation, and the
    bootstrap resamples of the evaluation."""

    data: int = Field(0, ge=0, le=2**32 - 1)
    train: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        if isinstance(value, int):
            raise ValueError(f"seed is a mapping of two seeds, e.g. seed: {{data: {value}, train: {value}}} "
                             "(data: phantoms, split, negatives; train: weights, epoch order, augmentation)")
        return value


class Params(Section):
    """The whole params.yaml, one section per concern (DESIGN.md, "Params")."""

    seed: SeedParams = SeedParams()
    synth: SynthParams = SynthParams()
    data: DataParams = DataParams()
    crop: CropParams = CropParams()
    split: SplitParams = SplitParams()
    preprocess: PreprocessParams = PreprocessParams()
    negatives: NegativesParams = NegativesParams()
    model: ModelParams = ModelParams()
    prototypes: PrototypeParams = PrototypeParams()
    loss: LossParams = LossParams()
    train: TrainParams = TrainParams()
    augment: AugmentParams = AugmentParams()
    warmup: WarmupParams = WarmupParams()
    project: ProjectParams = ProjectParams()
    finetune: FinetuneParams = FinetuneParams()
    eval: EvalParams = EvalParams()
    explain: ExplainParams = ExplainParams()
    compare: CompareParams = CompareParams()

    @model_validator(mode="after")
    def _prototypes_fit_the_maps(self) -> Params:
        problems = prototype_map_problems(self.model, self.prototypes, self.crop.size)
        if problems:
            raise _located_errors([(loc, "map_size", message, value) for loc, message, value in problems])
        return self

    @model_validator(mode="after")
    def _baselines_are_valid(self, info: ValidationInfo) -> Params:
        """Each baseline's merged params are valid params; errors are named under compare.models.<name>."""
        if info.context and info.context.get("baseline"):
            return self  # a baseline's own params: its siblings were checked with the parent's
        problems: list[tuple[tuple[str | int, ...], str, str, object]] = []
        for name in self.compare.models:
            try:
                self.baseline(name)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = ("compare", "models", name, *err["loc"])
                    problems.append((loc, err["type"], err["msg"], err.get("input")))
        if problems:
            raise _located_errors(problems)
        return self

    def baseline(self, name: str) -> Params:
        """The params a baseline of `compare.models` trains and is evaluated with: these params with its
        overrides merged into the shared sections, model.arch = its own or `name`, and no baselines of its
        own. Raises KeyError for a name not in compare.models, ValidationError for invalid merged params."""
        overrides: BaselineOverrides = self.compare.models[name]
        data = self.model_dump(mode="json")
        data["model"]["arch"] = name
        for section, changes in overrides.changes().items():
            data[section] = _merged(data[section], changes)
        return Params.model_validate_json(json.dumps(data), context={"baseline": True})


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in: mappings key by key, any other value replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _located_errors(problems: list[tuple[tuple[str | int, ...], str, str, object]]) -> ValidationError:
    """A ValidationError of Params from (location, error type, message, input) rows."""
    return ValidationError.from_exception_data(
        "Params",
        [
            {"type": PydanticCustomError(kind, "{message}", {"message": message}), "loc": loc, "input": value}
            for loc, kind, message, value in problems
        ],
    )


def prototype_map_problems(
    model: ModelParams, prototypes: PrototypeParams, crop_size: int
) -> list[tuple[tuple[str | int, ...], str, object]]:
    """(location, message, value) for every prototype level whose map at `crop_size` cannot take its
    params: the border (prototypes.border_fraction) must leave at least one interior cell, and top-k
    pooling (prototypes.top_k) needs at least k interior cells. Only the maps the architecture pools are
    checked, as the registry declares them (fpnpipe.model.registry: e.g. every FPN level holding a
    prototype for fpn_iaiabl, the conv-5 map with the level-5 k for iaiabl, with k = 1 for protopnet, none
    for vgg16)."""
    pooling = ARCHITECTURES[model.arch].pooling
    if pooling == "none":
        return []
    counts = prototypes.per_class.per_level()
    single = pooling in ("top_level", "top_level_max")
    levels = [FPN_LEVELS[-1]] if single else [level for level in FPN_LEVELS if sum(counts[level]) > 0]
    problems: list[tuple[tuple[str | int, ...], str, object]] = []
    for level in levels:
        index = FPN_LEVELS.index(level)
        cells = crop_size // FPN_STRIDES[level]
        inner = cells - 2 * border_cells(prototypes.border_fraction, cells)
        where = f"level {level}'s map is {cells} x {cells} cells at crop.size {crop_size}"
        if inner < 1:
            problems.append((
                ("prototypes", "border_fraction"),
                f"{where}, and a border fraction of {prototypes.border_fraction:g} leaves no interior cell; "
                "lower it or use larger crops",
                prototypes.border_fraction,
            ))
            continue
        k = 1 if pooling == "top_level_max" else prototypes.top_k[index]
        if k > inner * inner:
            after_border = f" ({inner} x {inner} inside the border)" if inner != cells else ""
            problems.append((
                ("prototypes", "top_k", index),
                f"top-k {k} at level {level} exceeds its map: {where}{after_border}, so k can be at most "
                f"{inner * inner}",
                k,
            ))
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def parse_params(data: object, source: str = "params") -> Params:
    """Validate already-loaded params data (a mapping; {} means every default). Raises ConfigError naming
    every bad key."""
    if data is None:
        raise ConfigError(f"{source}: the params file is empty (nothing but comments or null); "
                          "every stage needs its sections (see the repository's params.yaml)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(data).__name__}")
    try:
        return Params.model_validate_json(json.dumps(data, default=str))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = _dotted(tuple(err["loc"]))
            detail = err["msg"]
            if err["type"] == "extra_forbidden":
                detail = "unknown key (typo?)"
            elif err["type"] != "missing" and "input" in err:
                detail += f" (got {err['input']!r})"
            lines.append(f"{source}: {key}: {detail}")
        raise ConfigError("invalid params:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file. Missing sections take their defaults, but a file without any
    section (empty, only comments, null, or {}) is refused: it is almost always a truncated or wrong file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror})") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data == {}:
        data = None
    return parse_params(data, source=str(path))
