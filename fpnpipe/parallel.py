"""Map a function over items in worker processes, with a progress bar and results in input order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from fpnpipe.log import progress

T = TypeVar("T")
R = TypeVar("R")


def map_progress(fn: Callable[[T], R], items: Sequence[T], jobs: int, description: str) -> list[R]:
    """[fn(item) for item in items], run by `jobs` processes (spawned, so no inherited state).

    `fn` must be picklable (a module-level function or a functools.partial of one). Results come back in
    the order of `items` whatever order the workers finish in, so outputs stay deterministic.
    """
    results: list[R | None] = [None] * len(items)
    with progress() as bar:
        task = bar.add_task(description, total=len(items))
        if jobs <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.advance(task)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=ctx) as pool:
                futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.advance(task)
    return results  # type: ignore[return-value]
