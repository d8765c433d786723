"""The accuracy-interpretability frontier: margin AUROC among test lesions against activation precision, one
point per setting of loss.lambda_fine (and prototypes.top_k when it varies), each with its spread over
training seeds, from the runs of `dvc exp show --json` (see `make frontier`). Writes reports/frontier/
frontier.png and frontier.json (a DVC plot). Not a pipeline stage."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import fail, log, setup_logging
from stages.experiments import ALL_COMMITS_OPTION, JSON_FILE_OPTION, exp_show

OUT_DIR = Path("reports/frontier")


def main(
    json_file: Path | None = JSON_FILE_OPTION,
    all_commits: bool = ALL_COMMITS_OPTION,
    out_dir: Path = typer.Option(OUT_DIR, "--out-dir", file_okay=False, help="Where the PNG and JSON go."),
) -> None:
    setup_logging()
    from fpnpipe.atomic import write_json
    from fpnpipe.evaluate.experiments import ExperimentsError
    from fpnpipe.evaluate.sweep_figure import frontier_figure, save_png
    from fpnpipe.evaluate.sweeps import frontier_points, frontier_rows, runs_from_show

    show, source = exp_show("frontier", json_file, all_commits)
    try:
        points = frontier_points(runs_from_show(show))
    except ExperimentsError as exc:
        fail(f"frontier: {source}: {exc}")
    if not points:
        fail(f"frontier: {source} holds no finished run with both a margin AUROC and an activation precision")
    write_json(out_dir / "frontier.json", frontier_rows(points))
    save_png(frontier_figure(points), out_dir / "frontier.png")
    for row in frontier_rows(points):
        chance = "n/a" if row["chance"] is None else f"{row['chance']:.3f}"
        log.info("frontier: %s: margin AUROC %.3f, activation precision %.3f (chance %s), %d seed(s)",
                 row["setting"], row["auroc_average"], row["activation_precision"], chance, row["n_seeds"])
    log.info("frontier: wrote %s and %s", out_dir / "frontier.png", out_dir / "frontier.json")
