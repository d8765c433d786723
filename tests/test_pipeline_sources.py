"""The synth stage runs only for data.source synthetic (issue 15.4): with a manifest dataset in a temporary git +
dvc repo, the pipeline's graph holds no synth, `dvc repro negatives` runs preprocess and negatives only, and no
phantom is written; the same repo switched to the synthetic source does put synth before preprocess.
data.raw_dir that does not fit data.source stops preprocess and negatives before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpnpipe.config import DataParams, SynthParams, raw_dir_problem
from tests.conftest import write_params
from tests.test_pipeline import TINY, _ran, _run, commit_repo, copy_project

pytestmark = pytest.mark.slow

PHANTOMS = {"n_patients": 12, "image_shape": [192, 160], "lesion_radius_px": [8.0, 14.0]}
MINE = {  # test_pipeline's tiny params, on a manifest dataset
    **{k: v for k, v in TINY.items() if k != "synth"},
    "data": {"source": "manifest", "raw_dir": "data/raw/mine", "manifest": "data/raw/mine/manifest.csv",
             "pseudonymize": False},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + dvc repo of this pipeline whose data is a small manifest dataset in data/raw/mine (made by the
    phantom generator outside DVC, as a hospital export would arrive)."""
    repo = tmp_path_factory.mktemp("manifest_pipeline")
    copy_project(repo)
    write_params(repo / "make_mine.yaml", {"synth": {**PHANTOMS, "out_dir": "data/raw/mine"}})
    _run(repo, "python", "-m", "stages", "synth", "--params", "make_mine.yaml")
    (repo / "make_mine.yaml").unlink()
    write_params(repo / "params.yaml", MINE)
    commit_repo(repo)
    return repo


def _upstream_of_explain(repo: Path) -> str:
    return _run(repo, "dvc", "dag", "--dot", "explain")


def test_a_manifest_run_never_builds_phantoms(repo: Path) -> None:
    # `dvc repro` runs dvc.yaml's stages and whatever they depend on: explain depends on every other stage of
    # dvc.yaml, and its graph holds no synth. The data stages run for real (training is test_pipeline's job).
    graph = _upstream_of_explain(repo)
    assert "synth" not in graph and '"preprocess" -> "negatives"' in graph, graph
    out = _run(repo, "dvc", "repro", "negatives")
    assert _ran(out) == {"preprocess", "negatives"}, out
    assert (repo / "data/processed/negatives.h5").is_file()
    assert not (repo / "data/raw/synthetic").exists() and not (repo / "stages/dvc.lock").exists()
    assert _ran(_run(repo, "dvc", "repro", "negatives")) == set()


def test_the_synthetic_source_puts_synth_first(repo: Path) -> None:
    write_params(repo / "params.yaml", {**MINE, "data": {"source": "synthetic"}, "synth": PHANTOMS})
    try:
        graph = _upstream_of_explain(repo)
        assert '"stages/dvc.yaml:synth" -> "preprocess"' in graph and '"stages/dvc.yaml:synth" -> "negatives"' in graph
    finally:
        write_params(repo / "params.yaml", MINE)


def test_raw_dir_must_fit_the_source(run_stage, in_tmp: Path) -> None:
    synth = SynthParams()
    assert raw_dir_problem(DataParams(), synth) is None  # the defaults: synthetic in data/raw/synthetic
    assert raw_dir_problem(DataParams(source="manifest", raw_dir="data/raw/mine"), synth) is None
    assert raw_dir_problem(DataParams(source="cbis", raw_dir="data/raw/cbis-ddsm/"), synth) is None
    for data, words in [
        (DataParams(source="manifest"), "overlaps synth.out_dir"),  # raw_dir left at the synthetic default
        (DataParams(source="cbis", raw_dir="data/raw"), "overlaps synth.out_dir"),  # holds the phantoms
        (DataParams(source="manifest", raw_dir="data/raw/synthetic/x"), "overlaps synth.out_dir"),
        (DataParams(raw_dir="data/raw/mine"), "must be synth.out_dir"),
        (DataParams(manifest="data/raw/synthetic/other.csv"), "must be 'data/raw/synthetic/manifest.csv'"),
    ]:
        assert words in (raw_dir_problem(data, synth) or ""), data
    write_params(in_tmp / "p.yaml", {"data": {"source": "manifest", "manifest": "raw/manifest.csv"}})
    for stage in ("preprocess", "negatives"):
        result = run_stage(stage, "--params", "p.yaml")
        assert result.exit_code == 2 and "data.raw_dir 'data/raw/synthetic' overlaps" in result.output, result.output
    assert not (in_tmp / "data").exists() and not (in_tmp / "reports").exists()
