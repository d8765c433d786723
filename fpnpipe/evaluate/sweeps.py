"""Summaries over many runs of the pipeline, read from `dvc exp show --json` (see fpnpipe.evaluate.experiments):
the mean and spread of every metric over training seeds, and the accuracy-interpretability frontier (margin
AUROC against activation precision for each setting of the fine-annotation coefficient, with its seed
spread).

A run is one commit or experiment with finished metrics; runs with identical params count once (the
workspace repeats the last experiment run in it). Runs are grouped by every param except the ones that vary
within a group (the training seed), so only runs of one configuration are averaged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpnpipe.evaluate.experiments import METRICS_FILE, PARAMS_FILE, ExperimentsError, flatten

SEED_KEY = "seed.train"
"""The param a seed sweep varies (the training seed: the data and the test set stay fixed)."""

HEADLINE: tuple[str, ...] = (
    "auroc.average",
    "auroc.circumscribed",
    "auroc.indistinct",
    "auroc.spiculated",
    "detection.auroc",
    "margin_balanced_accuracy",
    "balanced_accuracy",
    "activation_precision.average",
    "activation_precision.chance.average",
    "activation_precision.lift.average",
    "activation_precision.level_2",
    "activation_precision.level_3",
    "activation_precision.level_4",
    "activation_precision.level_5",
)
"""The metrics a seed summary shows by default (`every=True` shows every numeric key)."""


@dataclass(frozen=True)
class Run:
    """One finished run: its name, its flattened params and its flattened numeric metrics."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]


def _data(section: Any, name: str) -> Mapping[str, Any] | None:
    if not isinstance(section, Mapping) or not isinstance(section.get(name), Mapping):
        return None
    data = section[name].get("data")
    return data if isinstance(data, Mapping) else None


def _numeric(tree: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in flatten(tree).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def _finished(executor: Any) -> bool:
    """False while an experiment is queued, running or failed: DVC then shows its commit's metrics."""
    return not (isinstance(executor, Mapping) and executor.get("state") not in (None, "success"))


def runs_from_show(show: Any, metrics_file: str = METRICS_FILE, params_file: str = PARAMS_FILE) -> list[Run]:
    """Every commit and experiment of `dvc exp show --json` output that has params and metrics, in its order,
    runs with identical params counted once (the first kept). Raises ExperimentsError for another shape."""
    if not isinstance(show, list):
        raise ExperimentsError("expected a JSON list of commits (the output of `dvc exp show --json`)")
    entries: list[Mapping[str, Any]] = []
    for commit in show:
        if not isinstance(commit, Mapping):
            raise ExperimentsError("a commit entry is not an object")
        entries.append(commit)
        for group in commit.get("experiments") or ():
            if isinstance(group, Mapping) and group.get("revs") and _finished(group.get("executor")):
                entries.append(group["revs"][0])
    runs: list[Run] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.get("error"):
            continue
        data = entry.get("data") or {}
        params, metrics = _data(data.get("params"), params_file), _data(data.get("metrics"), metrics_file)
        if params is None or metrics is None:
            continue
        flat = flatten(params)
        key = json.dumps(flat, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        name = entry.get("name") or str(entry.get("rev", "?"))[:7]
        runs.append(Run(str(name), flat, _numeric(metrics)))
    return runs


@dataclass(frozen=True)
class Spread:
    """mean, std (sample standard deviation, ddof = 1; NaN for a single run), min, max, n (runs that have
    the metric)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def spread(values: Sequence[float]) -> Spread:
    """The Spread of some values (at least one)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("a spread needs at least one value")
    std = float(array.std(ddof=1)) if array.size > 1 else float("nan")
    return Spread(float(array.mean()), std, float(array.min()), float(array.max()), int(array.size))


@dataclass(frozen=True)
class Group:
    """Runs that differ only in the `vary` params: the params they share (minus those), the values of
    `vary` they took, and the spread of every metric over them."""

    params: dict[str, Any]
    runs: tuple[str, ...]
    varied: tuple[tuple[Any, ...], ...]
    metrics: dict[str, Spread]


def group_runs(runs: Iterable[Run], vary: Sequence[str] = (SEED_KEY,)) -> list[Group]:
    """Group runs by all params except `vary`, in order of first appearance."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        shared = {k: v for k, v in run.params.items() if k not in vary}
        grouped.setdefault(json.dumps(shared, sort_keys=True), []).append(run)
    out: list[Group] = []
    for key, members in grouped.items():
        keys = sorted({k for r in members for k in r.metrics})
        out.append(Group(
            params=json.loads(key),
            runs=tuple(r.name for r in members),
            varied=tuple(tuple(r.params.get(k) for k in vary) for r in members),
            metrics={k: spread([r.metrics[k] for r in members if k in r.metrics]) for k in keys},
        ))
    return out


def differing(groups: Sequence[Group]) -> list[str]:
    """The params whose values differ between groups (what tells them apart), sorted."""
    keys = sorted({k for g in groups for k in g.params})
    return [k for k in keys if len({json.dumps(g.params.get(k)) for g in groups}) > 1]


def _fmt(s: Spread | None) -> str:
    if s is None:
        return "n/a"
    if math.isnan(s.std):
        return f"{s.mean:.3f} (1 run)"
    return f"{s.mean:.3f} +- {s.std:.3f}"


def format_seed_summary(groups: Sequence[Group], every: bool = False, vary: str = SEED_KEY) -> str:
    """A plain-text table per configuration: the runs and their seeds, then mean +- std (ddof 1) and range
    of the HEADLINE metrics (every numeric metric with `every`)."""
    labels = differing(groups)
    lines: list[str] = []
    for g in groups:
        title = ", ".join(f"{k}={json.dumps(g.params.get(k))}" for k in labels) or "configuration"
        seeds = ", ".join(str(v[0]) for v in g.varied)
        lines += [f"{title}: {len(g.runs)} run(s), {vary} = {seeds}", f"  {'metric':<40} {'mean +- std':<18} range"]
        keys = sorted(g.metrics) if every else [k for k in HEADLINE if k in g.metrics]
        for k in keys:
            s = g.metrics[k]
            lines.append(f"  {k:<40} {_fmt(s):<18} {s.low:.3f}-{s.high:.3f}")
        lines.append("")
    if not groups:
        lines.append("(no finished runs with metrics)")
    lines.append("std: sample standard deviation over the runs (ddof 1); one run has none.")
    return "\n".join(lines)


def summary_json(groups: Sequence[Group]) -> list[dict[str, Any]]:
    """JSON-able groups: {params that tell groups apart, runs, varied, metrics: {key: {mean, std, min, max,
    n}}}; NaN as null."""
    labels = differing(groups)

    def clean(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return [{
        "params": {k: g.params.get(k) for k in labels},
        "runs": list(g.runs),
        "varied": [list(v) for v in g.varied],
        "metrics": {k: {"mean": clean(s.mean), "std": clean(s.std), "min": s.low, "max": s.high, "n": s.n}
                    for k, s in g.metrics.items()},
    } for g in groups]


FRONTIER_SWEEP: tuple[str, ...] = ("loss.lambda_fine", "prototypes.top_k")
FRONTIER_X, FRONTIER_Y = "activation_precision.average", "auroc.average"


@dataclass(frozen=True)
class FrontierPoint:
    """One configuration of the sweep: its swept values, and the seed spread of x (activation precision)
    and y (margin AUROC among lesions)."""

    setting: dict[str, Any]
    x: Spread
    y: Spread
    chance: float | None
    runs: tuple[str, ...]


def frontier_points(runs: Iterable[Run], sweep: Sequence[str] = FRONTIER_SWEEP, x: str = FRONTIER_X,
                    y: str = FRONTIER_Y) -> list[FrontierPoint]:
    """One point per configuration (grouped over the training seed) that has both metrics, labelled by the
    `sweep` params that differ between configurations, sorted by those values."""
    groups = [g for g in group_runs(runs) if x in g.metrics and y in g.metrics]
    labels = [k for k in sweep if k in differing(groups)] or [k for k in sweep if any(k in g.params for g in groups)]
    points = [FrontierPoint(
        setting={k: g.params.get(k) for k in labels},
        x=g.metrics[x], y=g.metrics[y],
        chance=g.metrics["activation_precision.chance.average"].mean
        if "activation_precision.chance.average" in g.metrics else None,
        runs=g.runs,
    ) for g in groups]
    return sorted(points, key=lambda p: [_order(p.setting[k]) for k in labels])


def _order(value: Any) -> tuple[int, float, str]:
    """Sort key of a swept value: numbers by value (3 before 10), anything else by its JSON text after them."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value))


def frontier_rows(points: Sequence[FrontierPoint]) -> list[dict[str, Any]]:
    """Rows for a DVC plot / JSON file: the swept values, x and y mean / std / n, the chance level."""

    def clean(v: float) -> float | None:
        return v if math.isfinite(v) else None

    return [{
        **{k.split(".")[-1]: v for k, v in p.setting.items()},
        "setting": ", ".join(f"{k.split('.')[-1]}={json.dumps(v)}" for k, v in p.setting.items()),
        "activation_precision": p.x.mean, "activation_precision_std": clean(p.x.std),
        "auroc_average": p.y.mean, "auroc_average_std": clean(p.y.std),
        "chance": p.chance, "n_seeds": p.y.n,
    } for p in points]
