"""Saliency maps of a model on the annotated test lesions (GradCAM, GradCAM++) and their file form,
reports/compare/saliency/maps.h5: a byte-stable HDF5 file holding, beside each map, the crop's ids, class,
predicted class and fine annotation, so that any metric on the maps can be recomputed from the file alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fpnpipe.atomic import atomic_file
from fpnpipe.classes import CLASSES

RECORD_VERSION = 1
METHOD_LABELS: dict[str, str] = {"gradcam": "GradCAM", "gradcam_pp": "GradCAM++"}
"""The saliency methods by their key in the record and the reports, with their names in tables and figures."""
_STR = h5py.string_dtype(encoding="utf-8")


@dataclass(frozen=True)
class SaliencyRecord:
    """N annotated crops of side S.

    image_id, patient_id (N,) str; label, predicted (N,) int64 (indices into CLASSES; the maps explain
    `predicted`); fine (N, S, S) uint8, 1 = the relevant region; maps {method: (N, S, S) float32}, each map
    at crop size as the method gives it."""

    image_id: np.ndarray
    patient_id: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    fine: np.ndarray
    maps: dict[str, np.ndarray]


def write_saliency_record(path: str | Path, record: SaliencyRecord) -> None:
    """Write `record` atomically; identical records give identical bytes."""
    with atomic_file(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["record_version"] = RECORD_VERSION
        f.attrs["classes"] = np.array(CLASSES, dtype=_STR)
        f.attrs["methods"] = np.array(sorted(record.maps), dtype=_STR)
        for name in ("image_id", "patient_id"):
            f.create_dataset(name, data=np.array([str(v) for v in getattr(record, name)], dtype=_STR),
                             track_times=False)
        f.create_dataset("label", data=np.asarray(record.label, np.int64), track_times=False)
        f.create_dataset("predicted", data=np.asarray(record.predicted, np.int64), track_times=False)
        arrays = {"fine": np.asarray(record.fine, np.uint8)}
        arrays.update({f"maps/{m}": np.asarray(v, np.float32) for m, v in sorted(record.maps.items())})
        for name, value in arrays.items():
            f.create_dataset(name, data=value, track_times=False, compression="gzip", compression_opts=4,
                             shuffle=True, chunks=(1, *value.shape[1:]) if len(value) else None)


def read_saliency_record(path: str | Path) -> SaliencyRecord:
    """Read a saliency record back; ValueError naming the file if it is missing or of another version."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such saliency record (run the stage that writes it first)")
    with h5py.File(path, "r") as f:
        if f.attrs.get("record_version") != RECORD_VERSION:
            raise ValueError(f"{path}: record version {f.attrs.get('record_version')!r}, this code reads "
                             f"{RECORD_VERSION}")
        methods = [str(m) for m in f.attrs["methods"]]
        return SaliencyRecord(
            image_id=np.array(f["image_id"].asstr()[()], dtype=object),
            patient_id=np.array(f["patient_id"].asstr()[()], dtype=object),
            label=f["label"][()], predicted=f["predicted"][()], fine=f["fine"][()],
            maps={m: f[f"maps/{m}"][()] for m in methods},
        )
