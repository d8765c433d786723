"""data/processed/images.json: every accepted source image with its patient, split and lesion boxes.

Written by `preprocess`, read by `negatives` (which must keep away from every lesion and inherit the
patient's split, including patients that have only normal images and so no lesion crop). An image is
located by the manifest row that names it (source file + row number), never by its path: file and folder
names can identify a patient, and this table is a DVC output that is cached and shared.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from fpnpipe.atomic import write_json

TABLE_VERSION = 2


@dataclass(frozen=True)
class ImageEntry:
    image_id: str
    source: str
    """The manifest (or CBIS-DDSM CSV) that lists the image, as data.* names it."""
    row: int
    """The 1-based data row of `source` that names the image (its first row)."""
    patient_id: str
    split: str
    shape: tuple[int, int]
    """(H, W) of the source image in pixels."""
    lesion_boxes: tuple[tuple[float, float, float, float], ...]
    """[x0, y0, x1, y1] of every accepted lesion on the image, source pixels (empty for a normal image)."""
    all_lesions_known: bool = True
    """False when a lesion row of this image was refused: its extent is unknown, so `negatives` must not
    take tissue patches from this image."""


def write_image_table(path: str | Path, entries: list[ImageEntry]) -> None:
    write_json(path, {"version": TABLE_VERSION, "images": [asdict(e) for e in entries]})


def read_image_table(path: str | Path) -> list[ImageEntry]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the image table ({exc}); run `preprocess` first") from None
    if data.get("version") != TABLE_VERSION:
        raise ValueError(
            f"{path}: image table version {data.get('version')!r}, this code reads {TABLE_VERSION}; rerun `preprocess`"
        )
    return [
        ImageEntry(
            image_id=e["image_id"],
            source=e["source"],
            row=int(e["row"]),
            patient_id=e["patient_id"],
            split=e["split"],
            shape=tuple(e["shape"]),
            lesion_boxes=tuple(tuple(b) for b in e["lesion_boxes"]),
            all_lesions_known=bool(e["all_lesions_known"]),
        )
        for e in data["images"]
    ]
