"""Several training processes: PyTorch's process group (NCCL on GPUs, gloo on the CPU), launched from inside
a stage or found already set up by `torchrun`, and the few collectives training needs.

`launch(fn, processes)` runs `fn(dist)` on `processes` ranks and returns rank 0's result in the calling
process. With one process it is a plain call. With more it spawns them (torch.multiprocessing, start method
"spawn"): the calling process only supervises, so the first rank that fails or dies ends every other rank
at once and `launch` raises RankFailure naming it; a stage then writes nothing. Under `torchrun` (its
environment variables set) every process already is a rank: `launch` joins the process group torchrun
describes, runs `fn` and returns the result on rank 0, None elsewhere.

Why spawn rather than `torch.distributed.run` from inside the stage: on one machine the process group needs
no rendezvous service; a file in a private temporary folder (FileStore) replaces a TCP port that could be
taken; the supervisor's own process is the stage's, so DVC sees one command and Ctrl-C stops everything;
and rank 0's result comes back as a return value rather than through files the stage would have to find.
For several machines, torchrun is the launcher, and the same code runs under it unchanged.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
import torch.multiprocessing as tmp_mp

from fpnpipe.log import set_quiet, setup_logging
from fpnpipe.parallel import sigint_ignored
from fpnpipe.ranks import torchrun_rank

log = logging.getLogger(__name__)

R = TypeVar("R")

TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for the other ranks (validation on rank 0 alone never takes this long)."""


class RankFailure(RuntimeError):
    """A rank failed or died; the message names the rank and the cause."""


class LaunchError(ValueError):
    """The ranks cannot start (e.g. fewer GPUs than processes)."""


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes: rank in [0, world), the local rank (GPU index on
    its machine), and the backend ("gloo" or "nccl"; "" in a single process). Collectives are the identity
    when world == 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that logs, shows progress and returns the stage's results."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def comm_device(self) -> torch.device:
        """Where tensors must live for a collective: the rank's GPU under NCCL, else the CPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def shard(self, n: int) -> range:
        """This rank's contiguous share of n items in order: shares differ by at most one, lower ranks first
        (rank r of N takes [r * n / N, (r + 1) * n / N) rounded as np.array_split does)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The elementwise sum of `values` over the ranks (a new tensor, on values' device)."""
        if not self.active:
            return values.clone()
        buf = values.detach().to(self.comm_device).clone()
        tdist.all_reduce(buf)
        return buf.to(values.device)

    def all_gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's `values` concatenated along dim 0 in rank order; their first dimensions may differ
        (the others must agree)."""
        if not self.active:
            return values
        device = values.device
        local = values.detach().to(self.comm_device).contiguous()
        sizes = [torch.zeros(1, dtype=torch.long, device=self.comm_device) for _ in range(self.world)]
        tdist.all_gather(sizes, torch.tensor([local.shape[0]], device=self.comm_device))
        longest = max(int(s) for s in sizes)
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=self.comm_device)
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        tdist.all_gather(parts, padded)
        return torch.cat([p[: int(s)] for p, s in zip(parts, sizes, strict=True)]).to(device)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (any picklable object)."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        tdist.broadcast_object_list(box, src=0, device=self.comm_device if self.backend == "nccl" else None)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


def launch(fn: Callable[[Dist], R], processes: int, cuda: bool) -> R | None:
    """fn(dist) on `processes` ranks (or on torchrun's ranks); rank 0's result, None on torchrun's other
    ranks. Raises RankFailure naming the first rank that failed (every other rank is then stopped),
    LaunchError if there are fewer GPUs than processes. `fn` must be picklable (a module-level function or
    a functools.partial of one) when processes > 1."""
    backend = "nccl" if cuda else "gloo"
    rank = torchrun_rank()
    if rank is not None:
        return _under_torchrun(fn, rank, backend, processes)
    if processes == 1:
        return fn(Dist())
    if cuda and torch.cuda.device_count() < processes:
        raise LaunchError(f"train.processes is {processes} but only {torch.cuda.device_count()} CUDA device(s) are "
                         "visible")
    with tempfile.TemporaryDirectory(prefix="fpnpipe-ranks-") as folder:
        tmp = Path(folder)
        # the ranks report failures themselves: keep torch's C++ error lines about lost peers off the terminal
        quiet_cpp = {} if "TORCH_CPP_LOG_LEVEL" in os.environ else {"TORCH_CPP_LOG_LEVEL": "FATAL"}
        with sigint_ignored(), _environment(quiet_cpp):  # the ranks start ignoring Ctrl-C (see _rank_entry)
            context = tmp_mp.start_processes(_rank_entry, args=(fn, processes, backend, str(tmp)), nprocs=processes,
                                             join=False, start_method="spawn")
        try:
            failed = _supervise(context.processes)
        finally:
            _stop(context.processes)
        if failed:
            rank, reason = _first_failure(tmp, {i: context.processes[i].exitcode for i in failed})
            if reason == "interrupted":
                raise KeyboardInterrupt  # Ctrl-C reached the ranks first
            raise RankFailure(f"rank {rank} of {processes} failed: {reason}; every rank was stopped and nothing "
                              "was written")
        result_file = tmp / "result.pt"
        # Our own hand-over file, written by rank 0 into this private folder a moment ago: not an input.
        return torch.load(result_file, weights_only=False) if result_file.exists() else None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _supervise(processes: list) -> list[int]:
    """Wait until every rank has ended well, or one has not: then the ranks that had ended badly by then."""
    alive = {p.sentinel: i for i, p in enumerate(processes)}
    while alive:
        ready = multiprocessing.connection.wait(list(alive))
        failed = []
        for sentinel in ready:
            i = alive.pop(sentinel)
            processes[i].join()
            if processes[i].exitcode != 0:
                failed.append(i)
        if failed:
            return failed
    return []


def _stop(processes: list, grace: float = 1.0) -> None:
    """SIGTERM every rank still running, SIGKILL it `grace` seconds later (one blocked inside a collective
    may not get to its signal handler)."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
        p.join()


def _first_failure(tmp: Path, exit_codes: dict[int, int | None]) -> tuple[int, str]:
    """(rank, reason) of the failure that came first, given the ranks that had ended badly when the
    supervisor noticed. A rank killed by a signal leaves no error file and is the cause (the others then fail
    on the lost connection); otherwise the earliest error file is."""
    for rank, code in exit_codes.items():
        if code == 130:
            return rank, "interrupted"
    for rank, code in exit_codes.items():
        if code is not None and code < 0:
            return rank, f"killed by {signal.Signals(-code).name}"
    # also the files of ranks that were still exiting: the rank that raised first wrote first
    errors = sorted((f.stat().st_mtime_ns, int(f.stem.split("-")[1]), f) for f in tmp.glob("error-*.txt"))
    if errors:
        _, rank, path = errors[0]
        return rank, path.read_text(encoding="utf-8").strip()
    rank = min(exit_codes)
    return rank, f"exited with status {exit_codes[rank]}"


def _quiet_if_not_main(rank: int) -> None:
    setup_logging(logging.INFO if rank == 0 else logging.ERROR)
    set_quiet(rank != 0)


def _rank_entry(rank: int, fn: Callable[[Dist], Any], world: int, backend: str, folder: str) -> None:
    """One spawned rank: join the process group through a file in `folder`, run fn, hand rank 0's result
    over as `folder`/result.pt; on an error leave its one-line description in `folder`/error-<rank>.txt."""
    # From here Ctrl-C (or the supervisor's death, which torch turns into SIGINT) ends a rank at once and
    # quietly: the supervisor reports it.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    _quiet_if_not_main(rank)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    else:  # ranks share the CPU cores rather than each starting one thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    tdist.init_process_group(backend, init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world,
                             timeout=TIMEOUT)
    try:
        result = fn(Dist(rank, world, rank, backend))
        if rank == 0:
            partial = Path(folder) / "result.pt.part"
            torch.save(result, partial)
            os.replace(partial, Path(folder) / "result.pt")
    except Exception as exc:
        (Path(folder) / f"error-{rank}.txt").write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        log.debug("rank %d:\n%s", rank, traceback.format_exc())
        raise
    finally:
        tdist.destroy_process_group()


def _under_torchrun(fn: Callable[[Dist], R], rank: int, backend: str, processes: int) -> R | None:
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if processes not in (1, world):
        log.warning("train.processes is %d, but torchrun started %d processes: torchrun's count is used",
                    processes, world)
    _quiet_if_not_main(rank)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    initialised_here = not tdist.is_initialized()
    if initialised_here:
        tdist.init_process_group(backend, timeout=TIMEOUT)
    try:
        result = fn(Dist(rank, world, local_rank, backend))
    finally:
        if initialised_here:
            tdist.destroy_process_group()
    return result if rank == 0 else None
