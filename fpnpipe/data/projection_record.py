"""The projection record (where every prototype came from) and its file form, models/*_prototypes.h5: a
byte-stable HDF5 file. Written by the training stages, read by explain."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from fpnpipe.atomic import atomic_file
from fpnpipe.classes import CLASSES


@dataclass(frozen=True)
class ProjectionRecord:
    """Where every prototype came from (DESIGN.md, "Projection records"); m rows, crops of side S.

    prototype_class, prototype_level (m,) int; source_image_id, source_patient_id (m,) str; grid (m, 2)
    [row, col] at the prototype's level; similarity (m,) float (the best similarity found, before the
    prototype was replaced); rf_box and high_box (m, 4) [x0, y0, x1, y1] in crop pixels, x1 / y1 exclusive
    (receptive field of the grid cell; box of the self-activation's pixels >= its 95th percentile);
    self_activation (m, S, S) float (the projected prototype's patch similarity on its source crop,
    upsampled bilinearly); source_image (m, S, S) float (the source crop); duplicate_of (m,) int: the
    lower-numbered prototype of the same class and level projected onto the same patch (grid cell of the
    same crop), or -1; displaced (m,) bool: duplicate-free projection (project.distinct) moved the prototype
    off its own best patch, which another prototype of its class and level had taken.
    """

    prototype_class: np.ndarray
    prototype_level: np.ndarray
    source_image_id: np.ndarray
    source_patient_id: np.ndarray
    grid: np.ndarray
    similarity: np.ndarray
    rf_box: np.ndarray
    high_box: np.ndarray
    self_activation: np.ndarray
    source_image: np.ndarray
    duplicate_of: np.ndarray
    displaced: np.ndarray

    def duplicate_counts(self) -> dict[str, int]:
        """`duplicates`: prototypes sharing their patch with a lower-numbered one of their class and level;
        `displaced`: prototypes that duplicate-free projection moved off a patch another had taken (what
        plain projection would have duplicated)."""
        return {"duplicates": int((self.duplicate_of >= 0).sum()), "displaced": int(self.displaced.sum())}


RECORD_VERSION = 2
_STRINGS = {"source_image_id", "source_patient_id"}
_STR = h5py.string_dtype(encoding="utf-8")


def empty_record(crop_size: int) -> ProjectionRecord:
    """The record of a model without prototypes (the vgg16 black box): zero rows."""
    s = crop_size
    return ProjectionRecord(
        prototype_class=np.zeros(0, np.int64), prototype_level=np.zeros(0, np.int64),
        source_image_id=np.zeros(0, dtype=object), source_patient_id=np.zeros(0, dtype=object),
        grid=np.zeros((0, 2), np.int64), similarity=np.zeros(0, np.float32), rf_box=np.zeros((0, 4), np.int64),
        high_box=np.zeros((0, 4), np.int64), self_activation=np.zeros((0, s, s), np.float32),
        source_image=np.zeros((0, s, s), np.float32), duplicate_of=np.zeros(0, np.int64),
        displaced=np.zeros(0, bool),
    )


def write_projection_record(path: str | Path, record: ProjectionRecord) -> None:
    with atomic_file(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["record_version"] = RECORD_VERSION
        f.attrs["classes"] = np.array(CLASSES, dtype=_STR)
        f.attrs["crop_size"] = int(record.source_image.shape[-1])
        for field in fields(ProjectionRecord):
            value = getattr(record, field.name)
            if field.name in _STRINGS:
                f.create_dataset(field.name, data=np.array([str(v) for v in value], dtype=_STR), track_times=False)
            elif value.ndim == 3:
                f.create_dataset(field.name, data=value, track_times=False, compression="gzip",
                                 compression_opts=4, shuffle=True, chunks=(1, *value.shape[1:]) if len(value) else None)
            else:
                f.create_dataset(field.name, data=value, track_times=False)


def read_projection_record(path: str | Path) -> ProjectionRecord:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such projection record (run the stage that writes it first)")
    with h5py.File(path, "r") as f:
        if f.attrs.get("record_version") != RECORD_VERSION:
            raise ValueError(
                f"{path}: record version {f.attrs.get('record_version')!r}, this code reads {RECORD_VERSION}")
        values = {}
        for field in fields(ProjectionRecord):
            if field.name not in f:
                raise ValueError(f"{path}: missing dataset {field.name!r}")
            data = f[field.name]
            values[field.name] = np.array(data.asstr()[()], dtype=object) if field.name in _STRINGS else data[()]
    return ProjectionRecord(**values)
