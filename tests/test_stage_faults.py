"""Training stages that are killed, interrupted or fail: finetune killed mid-run resumes to the result of an
uninterrupted run; stale temporaries of a killed run go when the stage next starts; DVCLive output appears
only complete; previous outputs are removed once a stage starts its work; Ctrl-C prints one line and exits
130, in the stage and in its worker processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from fpnpipe.atomic import remove_stale
from fpnpipe.classes import CLASSES
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.data.projection_record import read_projection_record
from fpnpipe.data.schema import CropSet, write_crops
from fpnpipe.model.build import build_network
from fpnpipe.model.checkpoint import model_config, save_checkpoint
from tests.conftest import ROOT, write_params

SIZE = 32


def _crops(kind: str, n_per: int, seed: int) -> CropSet:
    """Lesion crops (kind "lesion": the three margin classes) or negatives, in train / val / test."""
    rng = np.random.default_rng(seed)
    labels = [0, 1, 2] if kind == "lesion" else [3]
    rows = [(label, split, k) for split in ("train", "val", "test") for label in labels for k in range(n_per)]
    n = len(rows)
    images = (0.3 + 0.1 * rng.standard_normal((n, SIZE, SIZE))).clip(0, 1).astype(np.float32)
    fine = np.zeros((n, SIZE, SIZE), np.uint8)
    for i, (label, _, _) in enumerate(rows):
        if label < 3:
            r = 4 + 3 * label
            images[i, 16 - r : 16 + r, 16 - r : 16 + r] += 0.4
            fine[i, 16 - r : 16 + r, 16 - r : 16 + r] = 1
    return CropSet(images=images.clip(0, 1), fine=fine, has_fine=np.array([lb < 3 for lb, _, _ in rows]),
                   roi=fine.copy(), label=np.array([lb for lb, _, _ in rows], np.int64),
                   split=np.array([s for _, s, _ in rows], dtype=object),
                   patient_id=np.array([f"{kind}{i}" for i in range(n)], dtype=object),
                   image_id=np.array([f"{kind}-img{i}" for i in range(n)], dtype=object),
                   source_box=np.zeros((n, 4), np.float32))


TINY = {
    "crop": {"size": SIZE},
    "model": {"fpn_channels": 8},
    "prototypes": {"per_class": {c: [1, 1, 0, 1] for c in CLASSES}, "top_k": [2, 1, 1, 1]},
    "train": {"device": "cpu"},
    "warmup": {"epochs": 50, "batch_size": 8},
    "finetune": {"epochs": 4, "batch_size": 8, "project_every": 2, "last_layer_epochs": 1},
    "project": {"batch_size": 8},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """crops, negatives and a projected tiny model (the inputs of finetune), and params.yaml."""
    root = tmp_path_factory.mktemp("world")
    write_crops(root / "data/processed/crops.h5", _crops("lesion", 3, 0))
    write_crops(root / "data/processed/negatives.h5", _crops("negative", 4, 1))
    model_params = ModelParams(fpn_channels=8)
    prototype_params = PrototypeParams.model_validate_json(json.dumps(TINY["prototypes"]))
    torch.manual_seed(0)
    save_checkpoint(root / "models/projected.pt", build_network(model_params, prototype_params),
                    model_config(model_params, prototype_params))
    write_params(root / "params.yaml", TINY)
    return root


def _copy(world: Path, to: Path) -> Path:
    shutil.copytree(world, to)
    return to


def _stage(cwd: Path, *args: str) -> subprocess.Popen:
    """`python -m stages ARGS` in `cwd` in a new process group (so a signal can reach its workers too)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "stages", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the stage ended (status {process.returncode}) before the awaited moment:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out")
        time.sleep(0.05)


def _saved_epochs(resume: Path) -> int:
    """Epochs recorded in a resume file (0 while there is none or it is being replaced)."""
    try:
        return int(torch.load(resume, weights_only=True)["state"]["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return 0


def _live_values(directory: Path) -> dict[str, list[str]]:
    """Every DVCLive curve: {file: ["step<TAB>value", ...]} (rows after the header)."""
    return {tsv.relative_to(directory).as_posix(): tsv.read_text().splitlines()[1:]
            for tsv in sorted((directory / "plots").rglob("*.tsv"))}


def test_finetune_killed_mid_run_resumes_to_the_uninterrupted_result(world: Path, tmp_path: Path, run_stage,
                                                                      monkeypatch) -> None:
    whole = _copy(world, tmp_path / "whole")
    monkeypatch.chdir(whole)
    assert run_stage("finetune").exit_code == 0
    assert not (whole / ".fpnpipe/resume/finetune.pt").exists()  # cleared once the outputs are written

    killed = _copy(world, tmp_path / "killed")
    (killed / "models/final.pt").write_bytes(b"an old model")  # a previous run's output
    process = _stage(killed, "finetune")
    resume = killed / ".fpnpipe/resume/finetune.pt"
    _wait_for(lambda: _saved_epochs(resume) >= 2, process)  # after the first projection, before the end
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "models/final.pt").exists()  # removed when the stage started, never half-written
    assert not (killed / "dvclive/finetune").exists()  # DVCLive wrote only into its temporary folder
    stale = list((killed / "dvclive").glob(".finetune.*.tmp"))
    assert stale, "the killed run's temporary DVCLive folder"
    saved = _saved_epochs(resume)
    assert 2 <= saved < 4

    monkeypatch.chdir(killed)
    result = run_stage("finetune")
    assert result.exit_code == 0
    assert not any(p.exists() for p in stale)  # cleared when the stage started again
    assert f"resuming after epoch {saved} of 4" in " ".join(result.output.split())
    a = torch.load(whole / "models/final.pt", weights_only=True)
    b = torch.load(killed / "models/final.pt", weights_only=True)
    assert a["extra"] == b["extra"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    ra, rb = read_projection_record(whole / "models/final_prototypes.h5"), read_projection_record(
        killed / "models/final_prototypes.h5")
    for field in ra.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))
    # the curves: every epoch once, the same values (replayed for the epochs before the kill)
    assert json.loads((whole / "dvclive/finetune/metrics.json").read_text()) == json.loads(
        (killed / "dvclive/finetune/metrics.json").read_text())
    assert _live_values(whole / "dvclive/finetune") == _live_values(killed / "dvclive/finetune")
    assert len(_live_values(killed / "dvclive/finetune")["plots/metrics/train/total.tsv"]) == 4


def test_a_resume_file_of_other_params_is_not_used(world: Path, tmp_path: Path, run_stage, monkeypatch) -> None:
    root = _copy(world, tmp_path / "w")
    monkeypatch.chdir(root)
    params = TINY | {"finetune": TINY["finetune"] | {"epochs": 1, "project_every": 1}}
    write_params(root / "params.yaml", params)
    resume = root / ".fpnpipe/resume/finetune.pt"
    resume.parent.mkdir(parents=True)
    torch.save({"format": "fpnpipe-resume", "key": "another key", "state": {"epoch": 1}}, resume)
    result = run_stage("finetune")
    assert result.exit_code == 0, result.output
    assert "resuming" not in result.output and "saved under other params" in " ".join(result.output.split())


def test_ctrl_c_in_a_training_stage_is_one_line_and_status_130(world: Path, tmp_path: Path) -> None:
    root = _copy(world, tmp_path / "w")
    process = _stage(root, "warmup")
    _wait_for(lambda: _saved_epochs(root / ".fpnpipe/resume/warmup.pt") >= 1, process)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground process group
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err and "Aborted" not in err
    assert err.strip().splitlines()[-1] == "warmup: interrupted (Ctrl-C)"
    assert not list((root / "dvclive").glob(".*.tmp"))  # the atomic writes cleaned up on the way out
    assert not (root / "models/warmup.pt").exists()


_WORKERS = """
import sys, time
from fpnpipe.parallel import map_progress
if __name__ == "__main__":
    try:
        map_progress(time.sleep, [60.0] * 4, 2, "sleeping")
    except KeyboardInterrupt:
        print("stopped", flush=True)
        sys.exit(130)
"""


def _workers(pid: int) -> list[int]:
    """The pool's worker processes among pid's children (not multiprocessing's resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    workers = []
    for child in map(int, found):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            workers.append(child)
    return workers


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_ctrl_c_reaches_no_worker_process(tmp_path: Path) -> None:
    script = tmp_path / "workers.py"
    script.write_text(_WORKERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: len(_workers(process.pid)) == 2, process, timeout=120)
    workers = _workers(process.pid)
    time.sleep(1.0)  # the workers are past start-up, sleeping in their task
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and out.strip() == "stopped"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert not any(_running(pid) for pid in workers)  # stopped before the caller returned


def test_stale_temporaries_go_and_live_ones_stay(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "models").mkdir()
        dead = tmp_path / "models/.warmup.pt.99999999.x1y2.tmp"  # no such process
        old = tmp_path / "models/.warmup.pt.k3j4l5.tmp"  # an older fpnpipe's name: no process id
        live = tmp_path / f"models/.warmup.pt.{sleeper.pid}.a1b2.tmp"  # a process still writing
        trash = tmp_path / "models/.explanations.99999999.zz.old"
        other = tmp_path / "models/.projected.pt.99999999.q.tmp"  # another output's
        for path in (dead, old, live, other):
            path.write_bytes(b"partial")
        (trash / "old").mkdir(parents=True)
        removed = remove_stale([tmp_path / "models/warmup.pt", tmp_path / "models/explanations"])
        assert sorted(removed) == sorted([dead, old, trash])
        assert live.exists() and other.exists()
    finally:
        sleeper.kill()


def test_a_stage_removes_its_previous_outputs_once_it_starts_work(world: Path, tmp_path: Path, run_stage,
                                                                   monkeypatch) -> None:
    root = _copy(world, tmp_path / "w")
    monkeypatch.chdir(root)
    (root / "models/warmup.pt").write_bytes(b"old")
    (root / "dvclive/warmup").mkdir(parents=True)
    (root / "dvclive/warmup/metrics.json").write_text("{}")
    stale = root / "models/.warmup.pt.99999999.ab.tmp"
    stale.write_bytes(b"half")
    write_params(root / "bad.yaml", TINY | {"warmup": {"epochs": -1}})
    result = run_stage("warmup", "--params", "bad.yaml")
    assert result.exit_code == 2  # invalid params: nothing touched
    assert (root / "models/warmup.pt").read_bytes() == b"old" and stale.exists()
    (root / "data/processed/negatives.h5").unlink()  # the inputs cannot be read
    result = run_stage("warmup")
    assert result.exit_code == 1 and "negatives.h5" in result.output
    assert not (root / "models/warmup.pt").exists() and not (root / "dvclive/warmup").exists()
    assert not stale.exists()
