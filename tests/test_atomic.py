"""Atomic outputs: nothing under the final name unless the write completed."""

from __future__ import annotations

import os

import pytest

from fpnpipe.atomic import atomic_dir, atomic_file, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"auroc": 0.9})
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("{broken")
        raise RuntimeError("killed")
    assert target.read_text() == '{\n  "auroc": 0.9\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "explanations"
    with atomic_dir(target) as tmp:
        (tmp / "old.png").write_bytes(b"1")
    with atomic_dir(target) as tmp:
        (tmp / "new.png").write_bytes(b"2")
    assert [p.name for p in target.iterdir()] == ["new.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["explanations"]


def test_outputs_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
