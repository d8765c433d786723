"""Reading .pt files without ever unpickling an arbitrary object (torch.load with weights_only=True), and
saying plainly why a file is refused, without torch's advice to retry the unsafe way."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from fpnpipe.reasons import stable_reason

_UNSAFE_MARK = "Weights only load failed"
_GLOBAL_MARK = "not an allowed global"
_UNPICKLER_STOP = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")


class UnsafeFile(ValueError):
    """The file is a pickle that needs more than tensors and plain data to load; `detail` says which."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class UnreadableFile(ValueError):
    """The file is not a PyTorch file at all (corrupt, truncated, another format); `detail` says why."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def load_plain(path: Path) -> Any:
    """torch.load(path, weights_only=True) on the CPU: tensors, numbers, strings, lists, tuples, dicts.

    Raises UnsafeFile when the file names objects other than tensors and plain data (classes or functions
    that unpickling would import and run), and UnreadableFile for anything else that fails (corrupt or
    foreign bytes); neither message repeats torch's text, which suggests retrying with weights_only=False.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if _UNSAFE_MARK in text and _GLOBAL_MARK in text:
            raise UnsafeFile("it holds objects other than tensors and plain data") from None
        if _UNSAFE_MARK in text:
            stop = _UNPICKLER_STOP.search(text)
            detail = f" ({stop.group(1).strip()})" if stop else ""
            raise UnreadableFile(f"not a PyTorch file of tensors and plain data{detail}") from None
        raise UnreadableFile(_first_line(exc)) from None
    except Exception as exc:  # torch.load raises many types for a bad file; all mean "unreadable"
        raise UnreadableFile(_first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    """`TypeName: first line of the message`, with nothing about weights_only (no unsafe advice)."""
    lines = [line for line in str(exc).splitlines() if line.strip() and "weights_only" not in line]
    first = stable_reason(lines[0], limit=200) if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
