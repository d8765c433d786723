"""Mean and spread over training seeds of every metric, per configuration: the runs of `dvc exp show --json`
grouped by all params except seed.train (e.g. after `dvc exp run --queue -S 'seed.train=0,1,2'` and `dvc exp
run --run-all`). Prints a table; --out also writes it as JSON. Not a pipeline stage."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import fail
from stages.experiments import ALL_COMMITS_OPTION, JSON_FILE_OPTION, exp_show


def main(
    json_file: Path | None = JSON_FILE_OPTION,
    all_commits: bool = ALL_COMMITS_OPTION,
    every: bool = typer.Option(False, "--all-metrics", help="Every numeric metric, not only the headline ones."),
    out: Path | None = typer.Option(None, "--out", dir_okay=False, help="Also write the summary as JSON here."),
) -> None:
    from fpnpipe.atomic import write_json
    from fpnpipe.evaluate.experiments import ExperimentsError
    from fpnpipe.evaluate.sweeps import format_seed_summary, group_runs, runs_from_show, summary_json

    show, source = exp_show("seeds", json_file, all_commits)
    try:
        groups = group_runs(runs_from_show(show))
    except ExperimentsError as exc:
        fail(f"seeds: {source}: {exc}")
    typer.echo(format_seed_summary(groups, every))
    if out is not None:
        write_json(out, summary_json(groups))
        typer.echo(f"summary: {out}")
