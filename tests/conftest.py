"""Shared test helpers: run a stage command in-process, build small params files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def write_params(path: Path, changes: dict) -> Path:
    """params.yaml of the repo with `changes` merged in, written to `path`."""
    yaml = YAML(typ="safe")
    data = yaml.load((ROOT / "params.yaml").read_text())
    yaml.dump(deep_update(data, changes), path)
    return path


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run the test inside tmp_path (stages write relative to the working directory)."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture
def run_stage() -> Callable[..., object]:
    """run_stage("preprocess", "--params", "p.yaml") -> click Result (exit_code, output)."""
    from stages.cli import build_app

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(build_app(), list(args), catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def report_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests.test_explain_report.build_report_world with the explain stage run in it, once per session (the
    report tests and the browser test only read it): returns the world's root."""
    from typer.testing import CliRunner

    from stages.cli import build_app
    from tests.test_explain_report import build_report_world

    root = tmp_path_factory.mktemp("report_world")
    build_report_world(root, explain={"n_cases": 4, "top_prototypes": 2, "dpi": 50})
    old = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(build_app(), ["explain", "--params", "params.yaml"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def report(report_world: Path) -> Path:
    """The report folder of `report_world`."""
    return report_world / "reports/explanations"
