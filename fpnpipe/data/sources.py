"""Pick the importer for `data.source`: every source yields LesionRows and Rejections. Pseudonymisation,
when on, is applied here, right after the importer returns, so that nothing downstream sees an original
patient or image identifier."""

from __future__ import annotations

from pathlib import Path

from fpnpipe.config import DataParams
from fpnpipe.data.pseudonym import Pseudonymizer
from fpnpipe.data.records import LesionRow, Rejection


def import_rows(
    data: DataParams, pseudonymizer: Pseudonymizer | None = None
) -> tuple[list[LesionRow], list[Rejection]]:
    """Rows of the configured source, their patient and image ids replaced by pseudonyms if a
    `pseudonymizer` is given. File-level problems raise ManifestError (a ValueError) naming the file."""
    if data.source == "cbis":
        from fpnpipe.data.cbis import read_cbis

        rows, rejections = read_cbis([Path(p) for p in data.cbis.csv], Path(data.cbis.image_root), data.label_map)
    else:
        # The synthetic set is written in the generic manifest format.
        from fpnpipe.data.manifest import read_manifest

        rows, rejections = read_manifest(Path(data.manifest), data.label_map)
    if pseudonymizer is not None:
        rows = pseudonymizer.rows(rows)
    return rows, rejections


def image_paths(rows: list[LesionRow]) -> dict[tuple[str, int], Path]:
    """{(source, row): image file} of accepted rows: how `negatives` finds the files of the images that
    data/processed/images.json lists by row."""
    return {(row.source, row.row): row.image_path for row in rows}
