"""Atomic outputs: write to a temporary sibling, rename into place only when complete.

A stage that fails or is killed part-way leaves no file under the final name, so neither DVC nor a later
stage can mistake a partial output for a complete one. A SIGKILL leaves its temporary files behind (nothing
runs after it): they are named `.NAME.<pid>.<random>.tmp` (a folder `.NAME.<pid>.<random>.old` while a
folder is replaced), so `remove_stale` can clear them when the stage next starts, sparing those of a process
still running.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """Give a temporary file / directory the permissions a plain open() / mkdir() would have given it
    (mkstemp and mkdtemp create them private to the owner)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier process that had our number: its files are stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temporaries(path: str | Path) -> list[Path]:
    """The temporary files and folders that atomic writes of `path` left beside it and whose process is gone
    (also those of older fpnpipe versions, whose names carry no process id)."""
    path = Path(path)
    head = f".{path.name}."
    if not path.parent.is_dir():
        return []
    found = []
    for entry in path.parent.iterdir():
        name = entry.name
        if not (name.startswith(head) and name.endswith((".tmp", ".old"))):
            continue
        pid = name[len(head):].split(".", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        found.append(entry)
    return sorted(found)


def remove_stale(paths: Iterable[str | Path]) -> list[Path]:
    """Remove the stale temporaries of every path (stale_temporaries); returns what was removed."""
    removed = []
    for path in paths:
        for entry in stale_temporaries(path):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def remove_outputs(paths: Iterable[str | Path]) -> list[Path]:
    """Delete each path (a file or a whole folder) that exists; returns those deleted."""
    removed = []
    for path in map(Path, paths):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _publish_mode(tmp, directory=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path` (old content removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, trash / "old")
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically, keys in insertion order, 2-space indent, trailing newline."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
