"""`fpnpipe show`: the headline metrics of every experiment with their CIs in 80 columns, read from a
recorded `dvc exp show --json` (tests/data/dvc_exp_show.json: DVC 3.67 on a scratch repo whose one stage
wrote reports/metrics.json in this project's schema; a commit, three experiments, one of them queued)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpnpipe.evaluate.experiments import ExperimentsError, changed_params, experiment_rows, format_table

SAMPLE = Path(__file__).parent / "data" / "dvc_exp_show.json"


def _metrics(show: list, name: str) -> dict:
    """The metrics of the commit or experiment `name`, found by walking the JSON by hand."""
    for commit in show:
        if (commit["name"] or commit["rev"]) == name:
            return commit["data"]["metrics"]["reports/metrics.json"]["data"]
        for group in commit["experiments"] or []:
            if group["name"] == name:
                return group["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    raise KeyError(name)


def test_table_lists_every_experiment_with_its_intervals_in_80_columns() -> None:
    show = json.loads(SAMPLE.read_text())
    table = format_table(experiment_rows(show))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 80
    by_name = {line.split()[0]: line for line in lines if line and not line.startswith((" " * 3, "-"))}
    for name in ("workspace", "master", "first-tirl", "fine-half"):
        m = _metrics(show, name)
        ci, det = m["auroc_ci95"]["average"], m["detection"]
        expected = (f"{m['auroc']['average']:.3f} ({ci['lo']:.3f}-{ci['hi']:.3f}) "
                    f"{det['auroc']:.3f} ({det['auroc_ci95']['lo']:.3f}-{det['auroc_ci95']['hi']:.3f})")
        assert expected in by_name[name], (name, by_name[name])
        precision = m["activation_precision"]
        assert f"{precision['average']:.3f} ({precision['chance']['average']:.3f})" in by_name[name]
    # The experiments' CIs differ from the commit's: the table shows each one's own.
    assert by_name["fine-half"].split()[1:3] != by_name["master"].split()[1:3]
    assert "queued" in by_name["scald-sley"]
    # Under each row: the test set and the params changed against the commit the experiment started from.
    after = {lines[k].split()[0]: lines[k + 1].strip() for k in range(len(lines) - 1) if lines[k].split()}
    assert after["fine-half"] == "208 test crops (86 lesions) · loss.lambda_fine=0.5"
    assert after["first-tirl"] == "208 test crops (86 lesions) · loss.lambda_fine=0.5 · seed=1"
    assert after["scald-sley"] == "loss.lambda_fine=0.5 · seed=2"
    assert after["master"] == "208 test crops (86 lesions)"
    assert "chance level 0.500" in table


def test_a_running_experiment_shows_no_metrics_yet() -> None:
    # While an experiment runs, `dvc exp show` gives it the metrics files of the commit it started from.
    show = json.loads(SAMPLE.read_text())
    group = next(g for c in show for g in c["experiments"] or [] if g["name"] == "fine-half")
    group["executor"] = {"state": "running"}
    row = next(r for r in experiment_rows(show) if r.name == "fine-half")
    assert row.state == "running" and row.metrics is None
    assert "running" in format_table([row]) and "0." not in format_table([row]).splitlines()[2]


def test_changed_params_and_bad_input() -> None:
    assert changed_params({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3], "d": 0}}) == (
        "a.c=[1,2]", "a.d=<removed>")
    assert changed_params({"a": 1}, None) == ()
    with pytest.raises(ExperimentsError, match="JSON list"):
        experiment_rows({"rev": "workspace"})
    with pytest.raises(ExperimentsError, match="without a 'rev'"):
        experiment_rows([{"name": "x"}])
    with pytest.raises(ValueError, match="80 columns"):
        format_table([], width=60)


def test_show_command_reads_a_saved_json_and_refuses_junk(in_tmp: Path, run_stage) -> None:
    result = run_stage("show", "--json-file", str(SAMPLE))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(" " * 17 + "margin AUROC") and "fine-half" in result.output
    (in_tmp / "junk.json").write_text("{not json")
    result = run_stage("show", "--json-file", "junk.json")
    assert result.exit_code == 1 and "junk.json is not JSON" in " ".join(result.output.split())


def test_show_outside_a_dvc_repository_says_so(in_tmp: Path, run_stage) -> None:
    result = run_stage("show")
    assert result.exit_code == 1
    assert "`dvc exp show --json` failed" in " ".join(result.output.split())
