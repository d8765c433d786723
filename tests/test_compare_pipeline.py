"""End to end, the comparison pipeline (stages/compare/dvc.yaml) in a temporary git + dvc repo on a tiny synthetic
set: `dvc repro stages/compare/dvc.yaml` trains every baseline and builds the table; plain `dvc repro` never runs a
comparison stage; a change to one baseline's params reruns that baseline and the report only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import write_params
from tests.test_pipeline import TINY, _run, commit_repo, copy_project

pytestmark = pytest.mark.slow

FAST = {**TINY, "synth": {**TINY["synth"], "n_patients": 12},
        "warmup": {"epochs": 1, "batch_size": 32},
        "finetune": {"epochs": 1, "batch_size": 32, "project_every": 1, "last_layer_epochs": 1},
        "compare": {"figure_cases": 2, "dpi": 50}}
MAIN = {"synth", "preprocess", "negatives", "warmup", "project", "finetune", "evaluate"}
BASELINES = {"train@vgg16", "train@protopnet", "train@iaiabl"}


def _ran(output: str) -> set[str]:
    """Stage names DVC ran, without the file prefix of stages/dvc.yaml and stages/compare/dvc.yaml."""
    return {name.rpartition(".yaml:")[2] for name in re.findall(r"Running stage '([^']+)'", output)}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("compare")
    copy_project(repo)
    write_params(repo / "params.yaml", FAST)
    commit_repo(repo)
    return repo


def test_compare_runs_baselines_and_upstream_then_plain_repro_runs_none(repo: Path) -> None:
    out = _run(repo, "dvc", "repro", "stages/compare/dvc.yaml")
    assert _ran(out) == MAIN | BASELINES | {"saliency", "report"}, out
    table = json.loads((repo / "reports/compare/table1.json").read_text())
    for name in ("fpn_iaiabl", "vgg16", "protopnet", "iaiabl"):
        assert set(table[name]["auroc"]) == {"circumscribed", "indistinct", "spiculated", "average"}
    assert "auroc_diff" in table["vgg16"] and "auroc_diff" not in table["fpn_iaiabl"]
    assert table["vgg16"]["gradcam"]["activation_precision"]["chance"]["average"] > 0
    assert "level_2" in table["fpn_iaiabl"]["activation_precision"]
    assert len(list((repo / "reports/compare/figure4").glob("*.png"))) == 2
    assert 'src="figure4/case_01_' in (repo / "reports/compare/index.html").read_text()
    plain = _run(repo, "dvc", "repro", "--dry")  # what plain `dvc repro` would run, without running it
    assert _ran(plain) == {"explain"}, plain  # the one main stage compare does not need; no comparison stage
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "compared")


def test_one_baselines_params_rerun_that_baseline_and_the_report_only(repo: Path) -> None:
    before = {n: (repo / f"models/compare/{n}/final.pt").read_bytes() for n in ("vgg16", "iaiabl")}
    write_params(repo / "params.yaml", {**FAST, "compare": {**FAST["compare"], "models": {
        "vgg16": {}, "protopnet": {"finetune": {"last_layer_epochs": 0}},
        "iaiabl": {"prototypes": {"top_k": [4, 2, 1, 2]}}}}})
    out = _run(repo, "dvc", "repro", "stages/compare/dvc.yaml")
    assert _ran(out) == {"train@protopnet", "report"}, out
    assert {n: (repo / f"models/compare/{n}/final.pt").read_bytes() for n in before} == before
