"""Model checkpoints: weights + the config that rebuilds the model. Loading never unpickles arbitrary objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from fpnpipe.atomic import atomic_file
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.build import Model, build_network
from fpnpipe.model.safe_load import UnreadableFile, UnsafeFile, load_plain

FORMAT = "fpnpipe-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match the model it describes; the message says which."""


def model_config(model: ModelParams, prototypes: PrototypeParams) -> dict[str, Any]:
    """The JSON-able config a checkpoint stores: {"model": {...}, "prototypes": {...}}."""
    return {"model": model.model_dump(mode="json"), "prototypes": prototypes.model_dump(mode="json")}


def parse_model_config(config: Mapping[str, Any], source: str = "config") -> tuple[ModelParams, PrototypeParams]:
    """Validate a `model_config` dict; raises CheckpointError naming the bad key."""
    if not isinstance(config, Mapping) or set(config) != {"model", "prototypes"}:
        raise CheckpointError(f"{source}: model config must be a mapping with keys 'model' and 'prototypes'")
    try:
        model = ModelParams.model_validate_json(json.dumps(config["model"]))
        stored = config["prototypes"]
        if isinstance(stored, Mapping) and "center_latent" not in stored:
            # Written before prototypes.center_latent existed, i.e. by a model of raw latent maps (eq. 2).
            stored = {**stored, "center_latent": False}
        prototypes = PrototypeParams.model_validate_json(json.dumps(stored))
    except (ValidationError, TypeError) as exc:
        raise CheckpointError(f"{source}: invalid model config: {exc}") from None
    return model, prototypes


def _check_plain(value: Any, where: str) -> None:
    """Only what torch.load(weights_only=True) reads back: tensors, str/int/float/bool/None, lists, tuples,
    and dicts with str keys."""
    if isinstance(value, (Tensor, str, int, float, bool)) or value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            _check_plain(item, f"{where}.{key}")
        return
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a checkpoint (tensors and plain values only)")


def _shapes(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def save_checkpoint(
    path: str | Path, model: Model, config: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> None:
    """Write `model`'s weights, `config` (a `model_config` dict) and `extra` (plain values and tensors,
    e.g. epoch, metrics, optimizer state) atomically to `path`.

    Raises CheckpointError if `config` does not describe `model`, TypeError if `extra` holds other objects.
    """
    model_params, prototype_params = parse_model_config(config)
    with torch.device("meta"):
        expected = _shapes(build_network(model_params, prototype_params).state_dict())
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if _shapes(state) != expected:
        raise CheckpointError(f"config (arch {model_params.arch}) does not describe the model being saved")
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(dict(config), sort_keys=True),
        "state_dict": state,
        "extra": extra,
    }
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        torch.save(payload, f)  # via a file object: the archive's inner folder is then not the random temp name


def load_checkpoint(path: str | Path) -> tuple[Model, dict[str, Any]]:
    """Rebuild the model stored at `path` (on the CPU, in train mode) and return it with its `extra` dict,
    to which the stored model config is added under "config" (ready for the next save_checkpoint).

    Reads with torch.load(weights_only=True). Raises CheckpointError for a missing file, a file that is not
    an fpnpipe checkpoint (or is corrupt), or weights that do not match the stored config. A file holding
    other objects than tensors and plain data is refused in so many words; torch's advice to retry with
    weights_only=False is never passed on.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = load_plain(path)
    except UnsafeFile as exc:
        raise CheckpointError(
            f"{path}: refused: not an fpnpipe checkpoint ({exc.detail}); fpnpipe never loads such files"
        ) from None
    except UnreadableFile as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc.detail})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an fpnpipe checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, expected {VERSION}")
    try:
        config = json.loads(payload["config"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: checkpoint config is missing or not JSON ({exc})") from None
    model_params, prototype_params = parse_model_config(config, source=str(path))
    model = build_network(model_params, prototype_params)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not match the stored model config: {exc}") from None
    return model, {**dict(payload.get("extra") or {}), "config": config}
