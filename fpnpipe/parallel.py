"""Map a function over items in worker processes, with a progress bar and results in input order."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TypeVar

from fpnpipe.log import progress

T = TypeVar("T")
R = TypeVar("R")


def map_progress(fn: Callable[[T], R], items: Sequence[T], jobs: int, description: str) -> list[R]:
    """[fn(item) for item in items], run by `jobs` processes (spawned, so no inherited state).

    `fn` must be picklable (a module-level function or a functools.partial of one). Results come back in
    the order of `items` whatever order the workers finish in, so outputs stay deterministic. Workers ignore
    Ctrl-C: the calling process gets it, stops them and re-raises, so the terminal shows no worker traceback.
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
            pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=ctx, initializer=_ignore_sigint)
            try:
                with sigint_ignored():  # workers start here and inherit it, so a Ctrl-C never reaches them
                    futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.advance(task)
            except BaseException:
                _stop(pool)
                raise
            pool.shutdown()
    return results  # type: ignore[return-value]


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while in the block: processes started in it are born ignoring it (a disposition that
    survives exec, and Python keeps at start-up), so a Ctrl-C while they import cannot print a traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (a Ctrl-C or an error in the caller)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()
