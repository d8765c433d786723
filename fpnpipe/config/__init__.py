"""Typed, validated params (params.yaml). Stages load them with `load_params` before doing any work.

An unknown key, a value of the wrong type or a value out of range raises ConfigError, whose message
names the file and the dotted key, e.g. ``params.yaml: loss.lambda_fine: Input should be >= 0 (got -1)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fpnpipe.config.base import ConfigError, Section
from fpnpipe.config.data import (
    CbisParams,
    CropParams,
    DataParams,
    NegativesParams,
    PreprocessParams,
    SplitParams,
    SynthParams,
)
from fpnpipe.config.model import LossParams, ModelParams, PrototypeParams
from fpnpipe.config.report import EvalParams, ExplainParams
from fpnpipe.config.train import (
    AugmentParams,
    FinetuneParams,
    ProjectParams,
    TrainParams,
    WarmupParams,
)

__all__ = [
    "AugmentParams",
    "CbisParams",
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
]


class Params(Section):
    """The whole params.yaml, one section per concern (DESIGN.md, "Params")."""

    seed: int = Field(0, ge=0, le=2**32 - 1)
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


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def parse_params(data: object, source: str = "params") -> Params:
    """Validate already-loaded params data (a mapping). Raises ConfigError naming every bad key."""
    if data is None:
        data = {}
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
    """Read and validate a params file. Missing sections take their defaults."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror})") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(data, source=str(path))
