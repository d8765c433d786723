"""fpnpipe.arrays.write_npz: numpy reads the file back without pickle, and the bytes do not depend on when
it was written."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from fpnpipe.arrays import write_npz


def test_round_trip_and_fixed_timestamps(tmp_path: Path) -> None:
    arrays = {"maps": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "ids": np.array(["a", "bé"]),
              "scalar": np.array(7), "flag": np.array([True, False])}
    write_npz(tmp_path / "a.npz", arrays)
    loaded = np.load(tmp_path / "a.npz")
    assert list(loaded.keys()) == list(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))


def test_object_arrays_and_odd_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds Python objects"):
        write_npz(tmp_path / "c.npz", {"ids": np.array(["a", None], dtype=object)})
    with pytest.raises(ValueError, match="not a plain name"):
        write_npz(tmp_path / "c.npz", {"a/b": np.zeros(1)})
    assert not (tmp_path / "c.npz").exists()
