"""What every stage command shares: the params option, loading params, failing with a clear message."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import typer

from fpnpipe.config import ConfigError, Params, load_params, raw_dir_problem
from fpnpipe.log import console, setup_logging

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", "-p", help="Params file to read (validated before any work).", dir_okay=False
)

log = logging.getLogger("fpnpipe")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for the user and exit with `code` (no traceback: the message says it all)."""
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def start(stage: str, params_path: Path) -> Params:
    """Set up logging and load the params, exiting with status 2 and the offending keys if invalid."""
    setup_logging()
    try:
        params = load_params(params_path)
    except ConfigError as exc:
        fail(f"{stage}: {exc}", code=2)
    log.info("%s: params from %s", stage, params_path)
    return params


def check_raw_dir(stage: str, params: Params, params_path: Path) -> None:
    """Stop a stage that depends on data.raw_dir in dvc.yaml when it does not fit data.source (status 2)."""
    problem = raw_dir_problem(params.data, params.synth)
    if problem:
        fail(f"{stage}: invalid params:\n  {params_path}: {problem}", code=2)
