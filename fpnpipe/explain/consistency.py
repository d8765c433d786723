"""Checks that a projection record describes the model being explained and the crops it is shown."""

from __future__ import annotations

import numpy as np

from fpnpipe.model import Model
from fpnpipe.train.projection import ProjectionRecord


def record_crop_size(record: ProjectionRecord) -> int:
    """The side S of the crops the model was trained and projected on (the record's source crops (m, S, S))."""
    return int(record.source_image.shape[-1])


def record_mismatch(record: ProjectionRecord, model: Model) -> str | None:
    """Why `record` cannot describe `model`'s prototypes (count, class or FPN level differ), or None."""
    if not getattr(model, "has_prototypes", False):
        return None
    m = int(model.num_prototypes)
    if len(record.prototype_class) != m:
        return f"the record has {len(record.prototype_class)} prototypes, the model {m}"
    if not np.array_equal(record.prototype_class, model.prototype_class.cpu().numpy()):
        return "the prototypes' classes differ between the record and the model"
    if not np.array_equal(record.prototype_level, model.prototype_level.cpu().numpy()):
        return "the prototypes' FPN levels differ between the record and the model"
    return None
