"""End to end: `dvc repro` in a temporary git + dvc repo on a tiny synthetic set; a second repro does
nothing; a param change reruns the stages that read it and their followers, never what
comes before (judged from what DVC prints); a stage killed mid-run leaves nothing DVC would take for complete
and reruns cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from tests.conftest import ROOT, write_params

pytestmark = pytest.mark.slow

TINY = {
    "synth": {"n_patients": 16, "image_shape": [192, 160], "lesion_radius_px": [8.0, 14.0]},
    "crop": {"size": 32},
    "split": {"val_fraction": 0.25, "test_fraction": 0.25},
    "preprocess": {"jobs": 1},
    "negatives": {"ratio": 1.0, "min_distance_px": 4.0, "skin_margin_px": 2},
    "model": {"fpn_channels": 16},
    "prototypes": {"per_class": {c: [1, 1, 0, 1] for c in ("circumscribed", "indistinct", "spiculated", "negative")}},
    "warmup": {"epochs": 1, "batch_size": 16},
    "finetune": {"epochs": 2, "batch_size": 16, "project_every": 1, "last_layer_epochs": 1},
    "eval": {"bootstrap_samples": 20},
    "explain": {"n_cases": 2},
}
ALL_STAGES = ("synth", "preprocess", "negatives", "warmup", "project", "finetune", "evaluate", "explain")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def _run(repo: Path, *args: str, timeout: int = 600) -> str:
    result = subprocess.run(args, cwd=repo, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def _ran(output: str) -> set[str]:
    """Names of the stages DVC ran (synth is addressed as stages/dvc.yaml:synth)."""
    return set(re.findall(r"Running stage '(?:[\w/.-]+:)?([\w-]+)'", output))


def _stages(repo: Path) -> tuple[str, ...]:
    names: list[str] = []
    for pipeline in ("dvc.yaml", "stages/dvc.yaml"):
        text = (repo / pipeline).read_text()
        names += re.findall(r"^  ([\w-]+):\s*$", text, flags=re.M)
    return tuple(names)


def copy_project(repo: Path) -> None:
    """The code and pipeline files a DVC run needs, copied into `repo` (no lock files, no caches)."""
    for name in ("fpnpipe", "stages"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "dvc.lock"))
    for name in ("dvc.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)


def commit_repo(repo: Path) -> None:
    """Make `repo` a git + DVC repository and commit everything in it."""
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "test@example.com")
    _run(repo, "git", "config", "user.name", "test")
    _run(repo, "dvc", "init", "-q")
    _run(repo, "dvc", "config", "core.analytics", "false")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "pipeline")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline")
    copy_project(repo)
    write_params(repo / "params.yaml", TINY)
    commit_repo(repo)
    return repo


def test_repro_runs_every_stage_then_nothing(repo: Path) -> None:
    first = _run(repo, "dvc", "repro")
    assert _ran(first) == set(_stages(repo)) >= set(ALL_STAGES)
    for path in ("data/processed/crops.h5", "data/processed/negatives.h5"):
        with h5py.File(repo / path) as f:
            assert {"images", "fine", "has_fine", "roi", "label", "split", "patient_id", "image_id"} <= set(f)
            assert f.attrs["schema_version"] == 1 and f.attrs["crop_size"] == 32
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    # DESIGN.md: auroc.* are the margin classes among lesions; lesion vs negative is detection.auroc.
    assert set(metrics["auroc"]) == {"circumscribed", "indistinct", "spiculated", "average"}
    assert "auroc" in metrics["detection"]
    assert {"accuracy", "balanced_accuracy", "n_test", "auroc_ci95", "activation_precision"} <= set(metrics)
    assert metrics["activation_area"]["n_crops"] == metrics["n_test_lesions"]
    assert (repo / "models/final_prototypes.h5").is_file()
    # The report's inputs and its offline renderings of every DVC plot.
    for path in ("data/processed/thumbnails.h5", "reports/activation_maps.npz", "reports/explanations/plots/roc.png",
                 "reports/explanations/plots/confusion.png", "reports/explanations/plots/training_warmup.png",
                 "reports/explanations/plots/training_finetune.png"):
        assert (repo / path).is_file(), path
    _run(repo, "git", "check-ignore", "-q", "reports/activation_maps.npz")  # DVC-cached, not in git
    second = _run(repo, "dvc", "repro")
    assert _ran(second) == set(), second
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "first run")


def test_negatives_param_reruns_negatives_not_upstream(repo: Path) -> None:
    params = repo / "params.yaml"
    write_params(params, {**TINY, "negatives": {**TINY["negatives"], "ratio": 2.0}})
    try:
        status = _run(repo, "dvc", "status")
        # The comparison's stages (stages/compare/dvc.yaml) have never run here, so they always show.
        changed = set(re.findall(r"^(?:stages/dvc\.yaml:)?([\w-]+):\s*$", status, flags=re.M))
        assert changed == {"negatives"}, status  # followers change only once negatives.h5 does
        out = _run(repo, "dvc", "repro", "negatives")
        assert _ran(out) == {"negatives"}, out
    finally:
        _run(repo, "git", "checkout", "params.yaml")
        _run(repo, "dvc", "repro", "negatives")


def test_exp_run_lambda_fine_reruns_training_only(repo: Path) -> None:
    out = _run(repo, "dvc", "exp", "run", "-S", "loss.lambda_fine=0.5")
    ran = _ran(out)
    assert {"warmup", "project", "finetune", "evaluate"} <= ran, out
    assert not ran & {"synth", "preprocess", "negatives"}, out
    diff = _run(repo, "dvc", "metrics", "diff", "--json")
    assert "reports/metrics.json" in diff


def test_killed_stage_leaves_no_output_and_reruns(repo: Path) -> None:
    write_params(repo / "params.yaml", {**TINY, "warmup": {"epochs": 40, "batch_size": 4}})
    log = repo / "kill.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["dvc", "repro", "warmup"], cwd=repo, env=_env(), stdout=out, stderr=out,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "warmup epoch 1:" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert "warmup epoch 1:" in log.read_text(), "warm-up never finished its first epoch"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (repo / "models/warmup.pt").exists()
    assert not list((repo / "models").glob("*.tmp"))
    status = _run(repo, "dvc", "status", "warmup")
    assert "warmup" in status and "changed" in status
    out = _run(repo, "dvc", "repro", "warmup")
    assert _ran(out) == {"warmup"} and (repo / "models/warmup.pt").is_file()
    _run(repo, "git", "checkout", "params.yaml")


def _queued_seeds(repo: Path) -> list[dict]:
    shown = json.loads(_run(repo, "dvc", "exp", "show", "--json"))
    return [rev["data"]["params"]["params.yaml"]["data"]["seed"]
            for entry in shown for group in (entry.get("experiments") or [])
            if (group.get("executor") or {}).get("state") == "queued" for rev in group["revs"]]


def test_a_training_seed_sweep_keeps_the_data_and_queues_one_experiment_per_seed(repo: Path) -> None:
    # The README's recipe: one experiment per training seed, each with the same data seed (same phantoms,
    # split and test set); a training-seed change leaves the data stages alone.
    _run(repo, "dvc", "exp", "run", "--queue", "-S", "seed.train=1,2")
    try:
        assert sorted(s["train"] for s in _queued_seeds(repo)) == [1, 2]
        assert {s["data"] for s in _queued_seeds(repo)} == {0}
    finally:
        _run(repo, "dvc", "queue", "remove", "--all")
    write_params(repo / "params.yaml", {**TINY, "seed": {"data": 0, "train": 1}})
    try:
        status = _run(repo, "dvc", "status")
        changed = set(re.findall(r"^([\w-]+):\s*$", status, flags=re.M))
        assert "warmup" in changed and not changed & {"synth", "preprocess", "negatives"}, status
    finally:
        _run(repo, "git", "checkout", "params.yaml")
