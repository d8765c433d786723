"""Which training process this is, from the environment alone (no torch import): torchrun, or another
launcher that sets RANK, WORLD_SIZE and MASTER_ADDR, starts every rank as its own process."""

from __future__ import annotations

import os


def torchrun_rank() -> int | None:
    """This process's rank when torchrun (or another launcher setting RANK, WORLD_SIZE and MASTER_ADDR)
    started it, else None."""
    env = os.environ
    if all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        return int(env["RANK"])
    return None


def is_main_process() -> bool:
    """False only on the ranks other than 0 of a torchrun launch: the processes that must never write."""
    return torchrun_rank() in (None, 0)
