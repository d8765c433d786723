"""The headline metrics of every DVC experiment with their confidence intervals, as an 80-column table.

Input: the output of `dvc exp show --json` (DVC 3: a list of commits, each {"rev", "name", "data", "error",
"experiments"}, where "data" holds {"params": {file: {"data": ...}}, "metrics": {file: {"data": ...}}} and
"experiments" is a list of {"revs": [experiment states], "executor": {"state", ...} | None, "name"}). This
module only reads that JSON; running DVC is the caller's business (fpnpipe never imports DVC).

For each commit and each of its experiments, the table shows the margin AUROC among test lesions
(`auroc.average` with `auroc_ci95.average.{lo,hi}`), the detection AUROC with its interval, the margin
balanced accuracy and the activation precision beside its chance level; a second line gives the test set's
size and the params that differ from the commit the experiment started from (the workspace: from HEAD).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

METRICS_FILE = "reports/metrics.json"
PARAMS_FILE = "params.yaml"

_NAME_W, _CI_W, _ACC_W, _PREC_W = 16, 19, 7, 13
HEADER = (
    f"{'':<{_NAME_W}} {'margin AUROC':<{_CI_W}} {'detection AUROC':<{_CI_W}} {'margin':>{_ACC_W}} "
    f"{'activation':<{_PREC_W}}\n"
    f"{'experiment':<{_NAME_W}} {'average (95% CI)':<{_CI_W}} {'(95% CI)':<{_CI_W}} {'bal.acc':>{_ACC_W}} "
    f"{'prec. (chance)':<{_PREC_W}}\n"
    f"{'-' * _NAME_W} {'-' * _CI_W} {'-' * _CI_W} {'-' * _ACC_W} {'-' * _PREC_W}"
)
LEGEND = (
    "AUROC: chance level 0.500; intervals are patient-level bootstrap 95% CIs (auroc_ci95.*). Activation "
    "precision: share of each prototype's top-5% activation inside the fine annotation, its chance level (the "
    "annotation's share of the crop) in parentheses. Under each row: the test set and the params that differ "
    "from the commit the experiment started from."
)


class ExperimentsError(ValueError):
    """The JSON is not the output of `dvc exp show --json`; the message says what is wrong."""


@dataclass(frozen=True)
class ExperimentRow:
    """One line of the table. name: the experiment's name, the branch, the short commit or "workspace";
    experiment: True for an experiment, False for a commit or the workspace; state: None when finished,
    else "queued" / "running" / "failed" / "error: <message>"; metrics: the metrics file's content (None
    when absent); changed: "key=value" for each param that differs from the baseline."""

    name: str
    experiment: bool
    state: str | None
    metrics: Mapping[str, Any] | None
    changed: tuple[str, ...]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"loss": {"lambda_fine": 0.5}} -> {"loss.lambda_fine": 0.5}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def changed_params(params: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> tuple[str, ...]:
    """'key=value' for every flattened param of `params` that differs from (or is absent in) `baseline`, and
    'key=<removed>' for one only in `baseline`; sorted by key. No baseline: nothing is reported."""
    if baseline is None:
        return ()
    mine, theirs = flatten(params), flatten(baseline)
    out = [f"{k}={json.dumps(mine[k], separators=(',', ':'))}" for k in sorted(mine)
           if k not in theirs or theirs[k] != mine[k]]
    out += [f"{k}=<removed>" for k in sorted(set(theirs) - set(mine))]
    return tuple(sorted(out))


def _file_data(section: Any, name: str, what: str) -> Mapping[str, Any] | None:
    """The "data" of file `name` in a params / metrics section, None when the file is absent or errored."""
    if not isinstance(section, Mapping):
        return None
    entry = section.get(name)
    if not isinstance(entry, Mapping):
        return None
    data = entry.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ExperimentsError(f"{what}: {name} data is not an object")
    return data


UNFINISHED = ("queued", "running", "failed")
"""Executor states of an experiment whose metrics are not its own yet."""


def _state(entry: Mapping[str, Any], executor: Any) -> str | None:
    error = entry.get("error")
    if error:
        message = error.get("msg") if isinstance(error, Mapping) else str(error)
        return f"error: {message}"
    if isinstance(executor, Mapping) and executor.get("state") not in (None, "success"):
        return str(executor["state"])
    return None


def _row(entry: Mapping[str, Any], experiment: bool, executor: Any, baseline: Mapping[str, Any] | None,
         metrics_file: str, params_file: str) -> tuple[ExperimentRow, Mapping[str, Any] | None]:
    """The row of one commit or experiment state, and its params (for the experiments under it)."""
    if not isinstance(entry, Mapping) or "rev" not in entry:
        raise ExperimentsError("an entry without a 'rev': not the output of `dvc exp show --json`")
    rev = str(entry["rev"])
    name = entry.get("name") or (rev if rev == "workspace" else rev[:7])
    data = entry.get("data") or {}
    params = _file_data(data.get("params"), params_file, str(name))
    metrics = _file_data(data.get("metrics"), metrics_file, str(name))
    changed = changed_params(params, baseline) if params is not None else ()
    state = _state(entry, executor)
    if state in UNFINISHED:
        metrics = None  # DVC shows the commit's files for an experiment that has not finished
    return ExperimentRow(str(name), experiment, state, metrics, changed), params


def experiment_rows(show: Any, metrics_file: str = METRICS_FILE, params_file: str = PARAMS_FILE) -> list[ExperimentRow]:
    """Rows in `dvc exp show`'s order: each commit (the workspace first), then its experiments. The
    workspace is compared with the commit after it (HEAD), an experiment with its commit. Raises
    ExperimentsError when `show` does not have the documented shape."""
    if not isinstance(show, list):
        raise ExperimentsError("expected a JSON list of commits (the output of `dvc exp show --json`)")
    commit_params: list[Mapping[str, Any] | None] = []
    for entry in show:
        data = entry.get("data") if isinstance(entry, Mapping) else None
        commit_params.append(_file_data((data or {}).get("params"), params_file, "commit"))
    rows: list[ExperimentRow] = []
    for k, entry in enumerate(show):
        baseline = None
        if isinstance(entry, Mapping) and entry.get("rev") == "workspace" and k + 1 < len(show):
            baseline = commit_params[k + 1]
        row, params = _row(entry, False, None, baseline, metrics_file, params_file)
        rows.append(row)
        for group in entry.get("experiments") or ():
            if not isinstance(group, Mapping) or not group.get("revs"):
                raise ExperimentsError(f"{row.name}: an experiment without 'revs'")
            # A run's states, newest first (several only for DVC 2 checkpoints): the first is the result.
            exp_row, _ = _row(group["revs"][0], True, group.get("executor"), params, metrics_file, params_file)
            rows.append(exp_row)
    return rows


def _get(tree: Mapping[str, Any] | None, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


def _num(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.3f}"


def _with_ci(metrics: Mapping[str, Any], point: str, ci: str) -> str:
    value = _get(metrics, point)
    if value is None:
        return "n/a"
    return f"{_num(value)} ({_num(_get(metrics, ci + '.lo'))}-{_num(_get(metrics, ci + '.hi'))})"


def _name(row: ExperimentRow) -> str:
    name = ("  " if row.experiment else "") + row.name
    return name if len(name) <= _NAME_W else name[: _NAME_W - 1] + "~"


def _cells(row: ExperimentRow) -> str:
    m = row.metrics
    if m is None:
        return row.state if row.state and not row.state.startswith("error") else "no metrics"
    precision = _get(m, "activation_precision.average")
    chance = _get(m, "activation_precision.chance.average")
    cells = (
        f"{_with_ci(m, 'auroc.average', 'auroc_ci95.average'):<{_CI_W}} "
        f"{_with_ci(m, 'detection.auroc', 'detection.auroc_ci95'):<{_CI_W}} "
        f"{_num(_get(m, 'margin_balanced_accuracy')):>{_ACC_W}} "
        f"{(_num(precision) + ' (' + _num(chance) + ')') if precision is not None else 'n/a':<{_PREC_W}}"
    )
    return cells.rstrip()


def _details(row: ExperimentRow, width: int) -> list[str]:
    """The indented line(s) under a row: test set size, state or error, changed params."""
    parts: list[str] = []
    if row.metrics is not None and _get(row.metrics, "n_test") is not None:
        parts.append(f"{_get(row.metrics, 'n_test')} test crops ({_get(row.metrics, 'n_test_lesions')} lesions)")
    if row.state is not None and (row.metrics is not None or row.state.startswith("error")):
        parts.append(row.state)
    parts += list(row.changed)
    if not parts:
        return []
    indent = " " * (4 if row.experiment else 2)
    return textwrap.wrap(" · ".join(parts), width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)


def format_table(rows: Sequence[ExperimentRow], width: int = 80) -> str:
    """The table, at most `width` (>= 80) characters per line: a header, one line per commit or experiment
    with its headline metrics, its details below it, and the legend."""
    if width < 80:
        raise ValueError(f"the table needs at least 80 columns, got {width}")
    lines = [line.rstrip() for line in HEADER.splitlines()]
    for row in rows:
        lines.append(f"{_name(row):<{_NAME_W}} {_cells(row)}".rstrip())
        lines += _details(row, width)
    if not rows:
        lines.append("(no commits or experiments)")
    lines += ["", *textwrap.wrap(LEGEND, width)]
    return "\n".join(lines)
