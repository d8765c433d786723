"""The crops.h5 / negatives.h5 schema (DESIGN.md, "Artifacts"): one in-memory type and its file form.

Files are written atomically and byte-stable: no timestamps, fixed chunking and compression, so identical
inputs give identical bytes and DVC can skip downstream stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fpnpipe.atomic import atomic_file
from fpnpipe.classes import CLASSES

SCHEMA_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
_STR = h5py.string_dtype(encoding="utf-8")


class SchemaError(ValueError):
    """A crops file does not follow the schema; the message names the file and the dataset."""


@dataclass(frozen=True)
class CropSet:
    """N square crops of side S and their annotations.

    images: (N, S, S) float32 in [0, 1]; fine: (N, S, S) uint8, 1 = relevant region (the margin);
    has_fine: (N,) bool; roi: (N, S, S) uint8 lesion mask (zeros where unknown or absent);
    label: (N,) int64 index into CLASSES; split, patient_id, image_id: (N,) str;
    source_box: (N, 4) float32 crop box [x0, y0, x1, y1] in source-image pixels (may extend past the border).
    """

    images: np.ndarray
    fine: np.ndarray
    has_fine: np.ndarray
    roi: np.ndarray
    label: np.ndarray
    split: np.ndarray
    patient_id: np.ndarray
    image_id: np.ndarray
    source_box: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.label)
        if self.images.ndim != 3 or self.images.shape[1] != self.images.shape[2]:
            raise SchemaError(f"images must be (N, S, S), got {self.images.shape}")
        for name in ("images", "fine", "roi"):
            arr = getattr(self, name)
            if arr.shape != (n, *self.images.shape[1:]):
                raise SchemaError(f"{name} has shape {arr.shape}, expected {(n, *self.images.shape[1:])}")
        for name in ("has_fine", "split", "patient_id", "image_id"):
            if len(getattr(self, name)) != n:
                raise SchemaError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.source_box.shape != (n, 4):
            raise SchemaError(f"source_box has shape {self.source_box.shape}, expected {(n, 4)}")
        if n and (self.label.min() < 0 or self.label.max() >= len(CLASSES)):
            raise SchemaError(f"label values must lie in [0, {len(CLASSES) - 1}]")
        bad = sorted(set(self.split.tolist()) - set(SPLITS))
        if bad:
            raise SchemaError(f"split values must be one of {SPLITS}, got {bad}")

    @property
    def crop_size(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.label)

    def select(self, mask: np.ndarray) -> CropSet:
        """Rows where `mask` (bool (N,) or index array) holds."""
        return CropSet(**{f: getattr(self, f)[mask] for f in self.__dataclass_fields__})

    def in_split(self, split: str) -> CropSet:
        return self.select(self.split == split)

    @staticmethod
    def empty(crop_size: int) -> CropSet:
        s = crop_size
        return CropSet(
            images=np.zeros((0, s, s), np.float32),
            fine=np.zeros((0, s, s), np.uint8),
            has_fine=np.zeros(0, bool),
            roi=np.zeros((0, s, s), np.uint8),
            label=np.zeros(0, np.int64),
            split=np.zeros(0, dtype=object),
            patient_id=np.zeros(0, dtype=object),
            image_id=np.zeros(0, dtype=object),
            source_box=np.zeros((0, 4), np.float32),
        )

    @staticmethod
    def concat(parts: list[CropSet], crop_size: int) -> CropSet:
        if not parts:
            return CropSet.empty(crop_size)
        return CropSet(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in CropSet.__dataclass_fields__})


def write_crops(path: str | Path, crops: CropSet) -> None:
    """Write `crops` to `path` atomically and byte-stably."""
    n, s = len(crops), crops.crop_size
    chunk = (1, s, s) if n else None

    def put(f: h5py.File, name: str, data: np.ndarray, **kw) -> None:
        f.create_dataset(name, data=data, track_times=False, **kw)

    with atomic_file(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["classes"] = np.array(CLASSES, dtype=_STR)
        f.attrs["crop_size"] = s
        img_kw = dict(chunks=chunk, compression="gzip", compression_opts=4, shuffle=True) if n else {}
        put(f, "images", np.ascontiguousarray(crops.images, np.float32), **img_kw)
        put(f, "fine", np.ascontiguousarray(crops.fine, np.uint8), **img_kw)
        put(f, "roi", np.ascontiguousarray(crops.roi, np.uint8), **img_kw)
        put(f, "has_fine", crops.has_fine.astype(bool))
        put(f, "label", crops.label.astype(np.int64))
        put(f, "source_box", crops.source_box.astype(np.float32))
        for name in ("split", "patient_id", "image_id"):
            put(f, name, np.array([str(v) for v in getattr(crops, name)], dtype=_STR))


def read_crops(path: str | Path, crop_size: int | None = None) -> CropSet:
    """Read and check a crops file; raises SchemaError naming the file and what is wrong, also when
    `crop_size` is given and the file holds crops of another size (the params changed: rerun preprocess)."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such file (run the stage that writes it first)")
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("schema_version")
            if version != SCHEMA_VERSION:
                raise SchemaError(f"{path}: schema_version {version!r}, this code reads {SCHEMA_VERSION}")
            classes = tuple(str(c) for c in f.attrs["classes"])
            if classes != CLASSES:
                raise SchemaError(f"{path}: classes {classes} differ from {CLASSES}")
            missing = [k for k in CropSet.__dataclass_fields__ if k not in f]
            if missing:
                raise SchemaError(f"{path}: missing datasets {missing}")

            def strings(name: str) -> np.ndarray:
                return np.array(f[name].asstr()[()], dtype=object)

            crops = CropSet(
                images=f["images"][()].astype(np.float32),
                fine=f["fine"][()],
                has_fine=f["has_fine"][()].astype(bool),
                roi=f["roi"][()],
                label=f["label"][()].astype(np.int64),
                split=strings("split"),
                patient_id=strings("patient_id"),
                image_id=strings("image_id"),
                source_box=f["source_box"][()].astype(np.float32),
            )
            if int(f.attrs["crop_size"]) != crops.crop_size:
                raise SchemaError(
                    f"{path}: crop_size attribute {int(f.attrs['crop_size'])} != images side {crops.crop_size}")
            if crop_size is not None and crops.crop_size != crop_size:
                raise SchemaError(
                    f"{path} has {crops.crop_size} px crops but crop.size is {crop_size}; rerun preprocess")
            return crops
    except SchemaError as exc:
        if str(path) in str(exc):
            raise
        raise SchemaError(f"{path}: {exc}") from None
    except (OSError, KeyError) as exc:
        raise SchemaError(f"{path}: not a readable crops file ({exc})") from None
