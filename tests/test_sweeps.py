"""Seed summaries and the frontier from `dvc exp show --json`: the runs of one configuration are grouped over
the training seed, and mean / std / range equal numpy's on the known metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpnpipe.evaluate.sweeps import (
    format_seed_summary,
    frontier_points,
    frontier_rows,
    group_runs,
    runs_from_show,
    summary_json,
)

AUROC = {(0.0, 0): 0.91, (0.0, 1): 0.89, (0.0, 2): 0.93, (1.0, 0): 0.88, (1.0, 1): 0.86, (1.0, 2): 0.84}
PRECISION = {(0.0, 0): 0.20, (0.0, 1): 0.22, (0.0, 2): 0.18, (1.0, 0): 0.61, (1.0, 1): 0.66, (1.0, 2): 0.59}


def _state(name: str, lam: float, seed: int, with_metrics: bool = True) -> dict:
    params = {"seed": {"data": 0, "train": seed}, "loss": {"lambda_fine": lam}, "prototypes": {"top_k": [4, 2, 1, 1]}}
    metrics = {"auroc": {"average": AUROC[(lam, seed)]},
               "activation_precision": {"average": PRECISION[(lam, seed)], "chance": {"average": 0.165}},
               "n_test": 208, "notes": {"x": "a string is not a metric"}}
    return {"rev": f"{name:0<40}", "name": name, "error": None,
            "data": {"params": {"params.yaml": {"data": params}},
                     "metrics": {"reports/metrics.json": {"data": metrics}} if with_metrics else {}}}


def exp_show() -> list:
    """A commit (lambda 1, seed 0) with five experiments, one duplicating the commit, one still queued."""
    commit = _state("main", 1.0, 0)
    exps = [_state(f"e{lam}-{seed}", lam, seed) for lam in (0.0, 1.0) for seed in (0, 1, 2)]
    queued = _state("queued", 0.0, 0, with_metrics=False)
    running = _state("running", 0.0, 2)  # DVC shows the commit's metrics files for it until it finishes
    running["data"]["params"]["params.yaml"]["data"]["seed"]["train"] = 7
    return [{"rev": "workspace", "name": None, "error": None, "data": commit["data"], "experiments": None},
            {**commit, "experiments": [{"revs": [e], "executor": None, "name": e["name"]} for e in [*exps, queued]]
             + [{"revs": [running], "executor": {"state": "running"}, "name": "running"}]}]


def test_runs_are_grouped_over_the_training_seed_with_numpy_spread() -> None:
    runs = runs_from_show(exp_show())
    assert len(runs) == 6  # workspace, commit and e1.0-0 share params: counted once; the queued run has no metrics and
    # the running one's are not its own
    groups = group_runs(runs)
    assert len(groups) == 2
    for group in groups:
        lam = group.params["loss.lambda_fine"]
        values = [AUROC[(lam, s)] for s in (0, 1, 2)]
        assert sorted(v[0] for v in group.varied) == [0, 1, 2]
        s = group.metrics["auroc.average"]
        assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(np.std(values, ddof=1))
        assert (s.low, s.high, s.n) == (min(values), max(values), 3)
        assert "notes.x" not in group.metrics
    text = format_seed_summary(groups)
    assert "loss.lambda_fine=0.0: 3 run(s), seed.train = 0, 1, 2" in text
    assert f"{np.mean([0.91, 0.89, 0.93]):.3f} +- {np.std([0.91, 0.89, 0.93], ddof=1):.3f}" in text
    assert summary_json(groups)[0]["params"] == {"loss.lambda_fine": 1.0}


def test_frontier_has_one_point_per_coefficient_with_its_seed_spread(tmp_path: Path, run_stage) -> None:
    points = frontier_points(runs_from_show(exp_show()))
    assert [p.setting for p in points] == [{"loss.lambda_fine": 0.0}, {"loss.lambda_fine": 1.0}]
    high = points[1]
    assert high.x.mean == pytest.approx(np.mean([0.61, 0.66, 0.59]))
    assert high.y.std == pytest.approx(np.std([0.88, 0.86, 0.84], ddof=1))
    assert high.chance == pytest.approx(0.165)
    assert frontier_rows(points)[1]["lambda_fine"] == 1.0
    saved = tmp_path / "show.json"
    saved.write_text(json.dumps(exp_show()))
    result = run_stage("frontier", "--json-file", str(saved), "--out-dir", str(tmp_path / "frontier"))
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "frontier/frontier.json").read_text())
    assert [r["n_seeds"] for r in rows] == [3, 3]
    assert (tmp_path / "frontier/frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    seeds = run_stage("seeds", "--json-file", str(saved), "--out", str(tmp_path / "seeds.json"))
    assert seeds.exit_code == 0 and "3 run(s)" in seeds.output


def test_frontier_points_sort_by_the_coefficient_s_value_not_its_text() -> None:
    runs = runs_from_show(exp_show())
    for run in runs:  # 0 -> 30, 1 -> 100: as text "100" would sort before "30"
        run.params["loss.lambda_fine"] = {0.0: 30.0, 1.0: 100.0}[run.params["loss.lambda_fine"]]
    assert [p.setting["loss.lambda_fine"] for p in frontier_points(runs)] == [30.0, 100.0]
