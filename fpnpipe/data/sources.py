"""Pick the importer for `data.source`: every source yields LesionRows and Rejections."""

from __future__ import annotations

from pathlib import Path

from fpnpipe.config import DataParams
from fpnpipe.data.records import LesionRow, Rejection


def import_rows(data: DataParams) -> tuple[list[LesionRow], list[Rejection]]:
    """Rows of the configured source. File-level problems raise ManifestError (a ValueError) naming the file."""
    if data.source == "cbis":
        from fpnpipe.data.cbis import read_cbis

        return read_cbis([Path(p) for p in data.cbis.csv], Path(data.cbis.image_root), data.label_map)
    # The synthetic set is written in the generic manifest format.
    from fpnpipe.data.manifest import read_manifest

    return read_manifest(Path(data.manifest), data.label_map)
