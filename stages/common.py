"""What every stage command shares: the params option, loading params, failing with a clear message."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from fpnpipe.config import ConfigError, Params, load_params
from fpnpipe.log import console, setup_logging

PARAMS_OPTION = typer.Option(
    Path("params.yaml"), "--params", "-p", help="Params file to read (validated before any work).", dir_okay=False
)

if TYPE_CHECKING:
    from fpnpipe.data.schema import CropSet
    from fpnpipe.model import Model
    from fpnpipe.train.devices import Runtime

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


@contextmanager
def live_epochs(directory: Path) -> Iterator[Callable[[dict[str, float]], None]]:
    """A DVCLive run in `directory` (its metrics.json and plots are declared in dvc.yaml by hand, so
    DVCLive writes no dvc.yaml of its own); yields a callback logging one epoch's metrics as one step."""
    from dvclive import Live

    with Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log_epoch(metrics: dict[str, float]) -> None:
            for name, value in metrics.items():
                if math.isfinite(value):
                    live.log_metric(name, value)
            live.next_step()

        yield log_epoch


def load_sets(params: Params, splits: tuple[str, ...]) -> dict[str, "CropSet"]:
    """Lesion crops + negative patches of each named split; fails with a clear message if the crop files
    are missing or do not match crop.size."""
    from fpnpipe.data.schema import SchemaError, read_crops
    from fpnpipe.train.data import split_crops
    from stages.paths import CROPS, NEGATIVES

    try:
        lesions, negatives = read_crops(CROPS), read_crops(NEGATIVES)
    except SchemaError as exc:
        fail(str(exc))
    for path, crops in ((CROPS, lesions), (NEGATIVES, negatives)):
        if crops.crop_size != params.crop.size:
            fail(f"{path} has {crops.crop_size} px crops but crop.size is {params.crop.size}; rerun preprocess")
    sets = {s: split_crops(lesions, negatives, s) for s in splits}
    for split, crops in sets.items():
        if len(crops) == 0:
            fail(f"the {split} split is empty; check split.* params and reports/preprocess.json")
    return sets


def load_trained(stage: str, path: Path, params: Params) -> tuple["Runtime", "Model", dict]:
    """Seed and pick the device, then load the checkpoint at `path` onto it; fails naming the file."""
    from fpnpipe.model import CheckpointError, load_checkpoint
    from fpnpipe.train.devices import setup_runtime

    runtime = setup_runtime(params.train, params.seed)
    try:
        model, extra = load_checkpoint(path)
    except CheckpointError as exc:
        fail(f"{stage}: {exc}")
    return runtime, runtime.prepare(model), extra
