"""Logging and progress bars on the terminal (rich), one set-up for every stage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Hide every progress bar of this process (the training ranks other than 0 show none)."""
    global _quiet
    _quiet = quiet


def setup_logging(level: int = logging.INFO) -> None:
    """Route `logging` through rich to stderr; idempotent."""
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
        root.addHandler(handler)
    root.setLevel(level)


def progress(extra: str = "") -> Progress:
    """A progress bar with count, elapsed and remaining time, plus an optional extra text column
    (use `{task.fields[...]}` in `extra` to show e.g. loss and images/s)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    if extra:
        columns.append(TextColumn(extra))
    return Progress(*columns, console=console, transient=False, disable=_quiet)


ProgressCallback = Callable[[int, int], None]
"""progress(done, total): what a long library call reports its progress through."""


@contextmanager
def progress_callback(description: str) -> Iterator[ProgressCallback]:
    """A progress bar driven by a library call's `progress(done, total)` callback (bootstrap, explain)."""
    with progress() as bar:
        task = bar.add_task(description, total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report
