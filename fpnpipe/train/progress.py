"""Progress of a training stage on the terminal: one bar for the whole stage, whose ETA covers everything
left (epochs, validation, projection, last-layer phases), and one bar for the phase running now.

Work is counted in image passes, weighted by what they cost: a training image (forward and backward) counts
3, an image of a phase that trains only the last layer or only runs the model (validation, projection) 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from rich.progress import Progress, TaskID

from fpnpipe.log import progress

TRAIN_WORK = 3.0
"""Weight of a training image (forward + backward) against a forward pass."""


class PhaseBar:
    """The bar of one phase: `advance(work, **fields)` moves it one step and the stage's bar by `work`."""

    def __init__(self, bar: Progress, task: TaskID, overall: TaskID, template: str) -> None:
        self._bar, self._task, self._overall, self._template = bar, task, overall, template

    def advance(self, work: float = 0.0, **fields: float) -> None:
        """One step done; `fields` (all those the template names, or none) update the shown text."""
        if self._template and fields:
            self._bar.update(self._task, advance=1, info=self._template.format(**fields))
        else:
            self._bar.update(self._task, advance=1)
        self._bar.update(self._overall, advance=work)


class StageProgress:
    """The live display of a stage (a context manager). total_work: the stage's work; done_work: what an
    earlier, interrupted run already did (a resumed stage), so the ETA covers what is left."""

    def __init__(self, description: str, total_work: float, done_work: float = 0.0) -> None:
        self.description, self.total_work, self.done_work = description, total_work, done_work
        self._bar: Progress | None = None
        self._overall: TaskID | None = None

    def __enter__(self) -> StageProgress:
        self._bar = progress("{task.fields[info]}")
        self._bar.__enter__()
        self._overall = self._bar.add_task(self.description, total=max(self.total_work, 1e-9),
                                           completed=int(self.done_work), info="whole stage")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, value, tb)
        self._bar = None

    @contextmanager
    def phase(self, description: str, steps: int, template: str = "", **fields: float) -> Iterator[PhaseBar]:
        """A bar of `steps` steps under the stage's bar, removed when the phase ends. `template` formats the
        fields given to advance() (e.g. "loss {loss:.4f}")."""
        if self._bar is None or self._overall is None:
            raise RuntimeError("StageProgress.phase() outside its `with` block")
        info = template.format(**fields) if template and fields else ""
        task = self._bar.add_task(f"  {description}", total=max(steps, 1), info=info)
        try:
            yield PhaseBar(self._bar, task, self._overall, template)
        finally:
            self._bar.remove_task(task)

