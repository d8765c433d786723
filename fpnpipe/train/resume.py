"""Resumable training stages: the state of a stage saved after every epoch, and taken up again by a later
run only when it was saved under the same key -- a hash of the params the stage reads, of its input files
and of the code -- so a killed stage continues where it stopped, while any change starts it afresh.

The state is plain data (tensors, numbers, strings, lists, dicts), written atomically and read back with
torch.load(weights_only=True). Only rank 0 writes it; every rank resumes from rank 0's copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fpnpipe.atomic import atomic_file
from fpnpipe.distributed import Dist

log = logging.getLogger(__name__)

FORMAT = "fpnpipe-resume"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def state_key(stage: str, params: Mapping[str, Any], files: Sequence[Path]) -> str:
    """The key a stage's saved state is valid for: sha256 over the stage name, its params (a JSON-able
    mapping) and the name and content hash of every file in `files` (inputs and code)."""
    h = hashlib.sha256(json.dumps({"stage": stage, "params": params}, sort_keys=True, default=str).encode())
    for path in sorted(files, key=str):
        h.update(f"\n{path}:{file_digest(path)}".encode())
    return h.hexdigest()


class Resume:
    """The resume file of one stage run: `load` the state saved under `key` (None if there is none, or it
    was saved under another key), `save` the state after an epoch (rank 0 only), `clear` it once the stage
    has written its outputs. path None disables resuming (load gives None, save does nothing)."""

    def __init__(self, path: Path | None, key: str = "", dist: Dist | None = None) -> None:
        self.path, self.key, self.dist = path, key, dist or Dist()

    def load(self) -> dict[str, Any] | None:
        state = self._read() if self.dist.main else None
        return self.dist.broadcast(state)

    def _read(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file is a reason to start over, never to stop
            log.warning("%s: unreadable saved state (%s): starting from the beginning", self.path, exc)
            return None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            log.warning("%s: not a saved training state: starting from the beginning", self.path)
            return None
        if payload.get("key") != self.key:
            log.info("%s: saved under other params, inputs or code: starting from the beginning", self.path)
            return None
        return payload["state"]

    def save(self, state: dict[str, Any]) -> None:
        if self.path is None or not self.dist.main:
            return
        with atomic_file(self.path) as tmp, tmp.open("wb") as f:
            torch.save({"format": FORMAT, "key": self.key, "state": state}, f)

    def clear(self) -> None:
        if self.path is not None and self.dist.main:
            self.path.unlink(missing_ok=True)
