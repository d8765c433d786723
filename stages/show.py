"""Print the headline test metrics of every commit and experiment with their 95% CIs (margin AUROC among
lesions, detection AUROC, margin balanced accuracy, activation precision beside its chance level) in an
80-column table, with the params each experiment changed. Reads `dvc exp show --json` (run here, or a saved
copy given with --json-file). Not a pipeline stage: it writes nothing."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import fail
from stages.experiments import ALL_COMMITS_OPTION, JSON_FILE_OPTION, exp_show


def main(
    json_file: Path | None = JSON_FILE_OPTION,
    all_commits: bool = ALL_COMMITS_OPTION,
    width: int = typer.Option(80, "--width", min=80, max=400, help="Table width in characters."),
) -> None:
    from fpnpipe.evaluate.experiments import ExperimentsError, experiment_rows, format_table

    show, source = exp_show("show", json_file, all_commits)
    try:
        rows = experiment_rows(show)
    except ExperimentsError as exc:
        fail(f"show: {source}: {exc}")
    typer.echo(format_table(rows, width))
