"""What every stage command shares: the params option, loading params, failing with a clear message."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import typer

from fpnpipe.atomic import remove_outputs, remove_stale
from fpnpipe.config import ConfigError, Params, load_params, raw_dir_problem
from fpnpipe.log import console, set_quiet, setup_logging
from fpnpipe.ranks import is_main_process
from stages.paths import OUTPUTS, RESUME_DIR

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", "-p", help="Params file to read (validated before any work).", dir_okay=False
)

log = logging.getLogger("fpnpipe")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for the user and exit with `code` (no traceback: the message says it all)."""
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def outputs_of(stage: str, params: Params) -> tuple[Path, ...]:
    """The stage's outputs (stages.paths.OUTPUTS; synth's folder is synth.out_dir)."""
    return (Path(params.synth.out_dir),) if stage == "synth" else OUTPUTS.get(stage, ())


def start(stage: str, params_path: Path) -> Params:
    """Set up logging and load the params, exiting with status 2 and the offending keys if invalid.

    With valid params the stage's work begins, and with it, as under `dvc repro` (which deletes a stage's
    outputs before running its command), its previous outputs are removed, together with temporary files
    that an earlier run killed mid-write left beside them (or beside its resume file). So a stage that then
    fails, on its inputs or later, leaves no output at all -- never an old one beside new ones -- and an
    invalid params file leaves everything untouched. Only the first of several torchrun ranks does this; the
    others log errors only and show no progress."""
    main_process = is_main_process()
    setup_logging(logging.INFO if main_process else logging.ERROR)
    set_quiet(not main_process)
    try:
        params = load_params(params_path)
    except ConfigError as exc:
        fail(f"{stage}: {exc}", code=2)
    log.info("%s: params from %s", stage, params_path)
    if main_process:
        outputs = outputs_of(stage, params)
        for stale in remove_stale([*outputs, RESUME_DIR / f"{stage}.pt"]):
            log.info("%s: removed %s, left by an earlier run that was killed", stage, stale)
        removed = remove_outputs(outputs)
        if removed:
            log.info("%s: removed the previous outputs %s", stage, ", ".join(map(str, removed)))
    return params


def check_raw_dir(stage: str, params: Params, params_path: Path) -> None:
    """Stop a stage that depends on data.raw_dir in dvc.yaml when it does not fit data.source (status 2)."""
    problem = raw_dir_problem(params.data, params.synth)
    if problem:
        fail(f"{stage}: invalid params:\n  {params_path}: {problem}", code=2)
