"""Byte-stable .npz files: numpy's own `savez_compressed` stamps each member with the current time, so the
same arrays would give other bytes on every run (and DVC would see a changed output). Here every member gets
a fixed timestamp and the members go in the order given; the file is written atomically. numpy.load reads
it as any .npz (allow_pickle stays False: only numeric, bool and fixed-width string arrays are accepted)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fpnpipe.atomic import atomic_file

_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can hold: the same for every member of every file."""


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` (name -> array) to `path` as a deflate-compressed .npz, atomically and byte-stably.
    Raises ValueError for an object array (it would need pickle to read back) or a name numpy cannot load."""
    for name, value in arrays.items():
        if not name or "/" in name or name.endswith(".npy"):
            raise ValueError(f"{path}: array name {name!r} is not a plain name")
        if np.asarray(value).dtype.hasobject:
            raise ValueError(f"{path}: array {name!r} holds Python objects; store strings as fixed-width unicode")
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
