"""Print the headline test metrics of every commit and experiment with their 95% CIs (margin AUROC among
lesions, detection AUROC, margin balanced accuracy, activation precision beside its chance level) in an
80-column table, with the params each experiment changed. Reads `dvc exp show --json` (run here, or a saved
copy given with --json-file). Not a pipeline stage: it writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from stages.common import fail


def main(
    json_file: Path | None = typer.Option(
        None, "--json-file", dir_okay=False, allow_dash=True,
        help="A saved `dvc exp show --json` output to read instead of running DVC ('-': stdin)."),
    all_commits: bool = typer.Option(False, "--all-commits", "-A",
                                     help="Every commit's experiments (dvc exp show -A)."),
    width: int = typer.Option(80, "--width", min=80, max=400, help="Table width in characters."),
) -> None:
    from fpnpipe.evaluate.experiments import ExperimentsError, experiment_rows, format_table

    if json_file is None:
        command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["-A"] if all_commits else [])]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            fail(f"show: `dvc exp show --json` failed: {done.stderr.strip() or done.stdout.strip()}")
        text, source = done.stdout, "`dvc exp show --json`"
    elif str(json_file) == "-":
        text, source = sys.stdin.read(), "standard input"
    else:
        try:
            text, source = json_file.read_text(encoding="utf-8"), str(json_file)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"show: cannot read {json_file}: {exc}")
    try:
        rows = experiment_rows(json.loads(text))
    except json.JSONDecodeError as exc:
        fail(f"show: {source} is not JSON ({exc})")
    except ExperimentsError as exc:
        fail(f"show: {source}: {exc}")
    typer.echo(format_table(rows, width))
