"""The shape of the code, checked statically (no stage runs):

- dvc.yaml's code dependencies cannot go stale: every file a stage's command imports, transitively
  (`python -m stages NAME` -> stages/__main__.py, stages/cli.py, stages/NAME.py and their fpnpipe imports,
  at module level or inside functions), is covered by one of the stage's deps;
- one direction of imports between fpnpipe's rooms: train, evaluate and explain never import each other, and
  every room imports only the rooms below it.

Two imports are by name, not by statement: stages/cli.py imports only the stage named on the command line
(so one stage's code is not another's dependency), and fpnpipe/model/build.py imports the architecture
modules of the registry's table (so the training stages depend on every registered architecture).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fpnpipe.model.registry import ARCHITECTURES
from tests.conftest import ROOT

PACKAGES = ("fpnpipe", "stages")


def _module_file(module: str) -> Path | None:
    """The file of a dotted module of this repo (package -> its __init__.py), or None if not ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except inside `if TYPE_CHECKING:` (never run)."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if not _is_type_checking(node):
            todo.extend(ast.iter_child_nodes(node))
    return found


@cache
def imports_of(path: Path) -> frozenset[Path]:
    """Files of this repo that `path` imports anywhere in its body (static: every import statement, also
    those inside functions, plus the packages above each imported module, which Python runs first)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    if path == ROOT / "fpnpipe/model/build.py":
        names.update(entry.module for entry in ARCHITECTURES.values())  # imported by name when a model is built
    files: set[Path] = set()
    for name in names:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, then a/b/c
            found = _module_file(".".join(parts[:k]))
            if found is not None:
                files.add(found)
    files.discard(path)
    return frozenset(files)


def closure(start: list[Path]) -> set[Path]:
    """Every repo file reachable from `start` by imports, `start` included."""
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imports_of(path))
    return seen


PIPELINES = ("dvc.yaml", "stages/dvc.yaml", "stages/compare/dvc.yaml")
"""Every pipeline file; the stages of the others run from the repository root (wdir)."""


def _dvc_stages() -> dict[str, dict]:
    """{stage: its definition} over every pipeline file (a foreach stage by its `do` template)."""
    stages: dict[str, dict] = {}
    for file in PIPELINES:
        for name, stage in YAML(typ="safe").load((ROOT / file).read_text())["stages"].items():
            stages[name if file == "dvc.yaml" else f"{file}:{name}"] = stage.get("do", stage)
    return stages


def _stage_module(cmd: str) -> str | None:
    match = re.fullmatch(r"python -m stages ([\w-]+)(?: .*)?", cmd.strip())
    return match.group(1).replace("-", "_") if match else None


def _dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


@pytest.mark.parametrize("name", sorted(_dvc_stages()))
def test_stage_deps_cover_every_file_its_command_imports(name: str) -> None:
    stage = _dvc_stages()[name]
    module = _stage_module(stage["cmd"])
    assert module is not None, f"stage {name}: expected `python -m stages NAME`, got {stage['cmd']!r}"
    entry = [ROOT / "stages/__main__.py", ROOT / "stages/cli.py", ROOT / f"stages/{module}.py"]
    needed = sorted(p.relative_to(ROOT).as_posix() for p in closure(entry))
    deps = _dep_paths(stage)
    for dep in deps:
        if "${" not in dep and not dep.startswith(("data/", "models/", "reports/")):
            assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"
    missing = [f for f in needed if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not missing, f"stage {name}: dvc.yaml deps miss files its command imports: {missing}"


def test_the_cli_imports_no_stage_module_statically() -> None:
    # Otherwise every stage would depend on every other stage's code (and rerun when it changes).
    stage_files = {p for p in (ROOT / "stages").glob("*.py")} - {
        ROOT / "stages/__init__.py", ROOT / "stages/__main__.py", ROOT / "stages/cli.py", ROOT / "stages/common.py",
        ROOT / "stages/paths.py"}
    assert not closure([ROOT / "stages/__main__.py", ROOT / "stages/cli.py"]) & stage_files


# Rooms of fpnpipe, bottom to top, and what each may import (besides itself).
ROOMS: dict[str, set[str]] = {
    "classes": set(),
    "log": set(),
    "atomic": set(),
    "arrays": {"atomic"},
    "reasons": set(),
    "parallel": {"log"},
    "ranks": set(),
    "distributed": {"log", "parallel", "ranks"},
    "config": {"classes", "model.registry"},
    "model.registry": set(),
    "metrics": {"classes"},
    "runtime": {"config", "distributed"},
    "data": {"classes", "config", "atomic", "log", "parallel", "reasons", "distributed"},
    "model": {"classes", "config", "atomic", "reasons"},
    "losses": {"classes", "config", "model", "metrics"},
    "inference": {"model", "data", "runtime"},
    "train": {"classes", "config", "data", "model", "losses", "metrics", "runtime", "inference", "log", "atomic",
              "distributed"},
    "evaluate": {"classes", "config", "data", "model", "metrics", "runtime", "inference", "log", "atomic", "arrays"},
    "explain": {"classes", "config", "data", "model", "metrics", "runtime", "inference", "log", "atomic", "arrays",
                "reasons"},
}


def _room(path: Path) -> str:
    parts = path.relative_to(ROOT / "fpnpipe").with_suffix("").parts
    if parts[:2] == ("model", "registry"):
        return "model.registry"
    return parts[0] if parts[0] != "__init__" else "fpnpipe"


def _imports_nothing(path: Path) -> bool:
    return not _import_nodes(ast.parse(path.read_text(encoding="utf-8")))


def test_rooms_import_only_downwards() -> None:
    # A package's __init__ runs before its modules; those that import nothing carry no dependency.
    wrong = []
    for path in sorted((ROOT / "fpnpipe").rglob("*.py")):
        room = _room(path)
        if room == "fpnpipe":
            continue
        assert room in ROOMS, f"{path}: room {room} is not in the layering table"
        for target in imports_of(path):
            if target.is_relative_to(ROOT / "stages"):
                wrong.append(f"{path.relative_to(ROOT)} imports the stages package")
                continue
            other = _room(target)
            if other in (room, "fpnpipe") or (room == "model" and other == "model.registry"):
                continue
            if target.name == "__init__.py" and _imports_nothing(target):
                continue
            if other not in ROOMS[room]:
                wrong.append(f"{path.relative_to(ROOT)} ({room}) imports {target.relative_to(ROOT)} ({other})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_train_evaluate_and_explain_never_import_each_other() -> None:
    for a in ("train", "evaluate", "explain"):
        for b in {"train", "evaluate", "explain"} - {a}:
            assert b not in ROOMS[a]


def test_the_closure_follows_function_level_and_registry_imports_but_not_type_checking() -> None:
    warmup = {p.relative_to(ROOT).as_posix() for p in closure([ROOT / "stages/warmup.py"])}
    assert "fpnpipe/losses.py" in warmup  # imported inside main()
    assert "fpnpipe/model/archs/iaiabl.py" in warmup  # through the registry's table
    assert not any(p.startswith("fpnpipe/explain/") for p in warmup)
    synth = {p.relative_to(ROOT).as_posix() for p in closure([ROOT / "stages/synth.py"])}
    assert "fpnpipe/model/registry.py" in synth and "fpnpipe/model/build.py" not in synth
    training = {p.relative_to(ROOT).as_posix() for p in imports_of(ROOT / "stages/training.py")}
    assert "fpnpipe/model/build.py" not in training  # only under `if TYPE_CHECKING:`
