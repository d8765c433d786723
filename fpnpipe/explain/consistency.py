"""Checks that a projection record describes the model being explained and the crops it is shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpnpipe.data.projection_record import ProjectionRecord, read_projection_record
from fpnpipe.model.build import Model, prototype_network
from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint


class ExplainInputError(ValueError):
    """The model or its record cannot be used for explanations; the message names the file."""


def record_crop_size(record: ProjectionRecord) -> int:
    """The side S of the crops the model was trained and projected on (the record's source crops (m, S, S))."""
    return int(record.source_image.shape[-1])


def record_mismatch(record: ProjectionRecord, model: Model) -> str | None:
    """Why `record` cannot describe `model`'s prototypes (count, class or FPN level differ), or None."""
    net = prototype_network(model)
    if net is None:
        return None
    m = int(net.num_prototypes)
    if len(record.prototype_class) != m:
        return f"the record has {len(record.prototype_class)} prototypes, the model {m}"
    if not np.array_equal(record.prototype_class, net.prototype_class.cpu().numpy()):
        return "the prototypes' classes differ between the record and the model"
    if not np.array_equal(record.prototype_level, net.prototype_level.cpu().numpy()):
        return "the prototypes' FPN levels differ between the record and the model"
    return None


def load_model_and_record(model_path: Path, record_path: Path, crop_size: int) -> tuple[Model, ProjectionRecord | None]:
    """The trained model and its projection record, checked against each other and against `crop_size`.

    The record is required for a model with prototypes; for the black box it is read only if present (to
    check the crop size) and None is returned. Raises ExplainInputError naming the file."""
    try:
        model, _ = load_checkpoint(model_path)
    except CheckpointError as exc:
        raise ExplainInputError(str(exc)) from None
    has_prototypes = prototype_network(model) is not None
    if not has_prototypes and not Path(record_path).exists():
        return model, None
    try:
        record = read_projection_record(record_path)
    except (ValueError, OSError) as exc:
        raise ExplainInputError(str(exc)) from None
    problem = record_mismatch(record, model)
    if problem:
        raise ExplainInputError(f"{record_path} does not describe {model_path}: {problem}; rerun finetune")
    size = record_crop_size(record)
    if size != crop_size:
        raise ExplainInputError(f"the model was trained on {size} px crops ({record_path}) but crop.size is "
                                f"{crop_size}; set crop.size to {size}")
    return model, record if has_prototypes else None
