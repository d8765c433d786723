"""The comparison of the paper's Table 1, recomputed from the saved predictions of every model on the same test
crops: margin AUROC among lesion crops per class and averaged with patient-level bootstrap CIs, margin balanced
accuracy, the paired bootstrap difference of the average AUROC against the main model, and the activation
precision of every method (prototype maps from each model's metrics.json, saliency maps from theirs).

reports/compare/table1.json keys (scalars, so `dvc metrics diff` compares them): `<model>.auroc.<key>`,
`<model>.auroc_ci95.<key>.{lo,hi}` (key: circumscribed, indistinct, spiculated, average),
`<model>.margin_balanced_accuracy`, `<model>.auroc_diff.average` and `<model>.auroc_diff_ci95.average.{lo,hi}`
(the model's average minus the main model's, paired; not for the main model), `<model>.activation_precision.
{average, level_l..., chance.{average, level_l...}, lift.{...}}` and `<model>.activation_area.{average,
level_l...}` (prototype models),
`<model>.<method>.activation_precision...` / `.activation_area.average` (saliency methods of a model),
`<model>.n_test_lesions`; and at the top `n_test_lesions`, `n_test_lesion_patients`, `bootstrap_samples`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpnpipe.classes import FPN_LEVELS, MARGIN_CLASSES
from fpnpipe.evaluate.predictions import Predictions
from fpnpipe.evaluate.report import nan_to_none
from fpnpipe.metrics.bootstrap import bootstrap_ci, paired_mean_auroc_difference
from fpnpipe.metrics.classification import AVERAGE, margin_auroc_table, margin_balanced_accuracy, margin_tasks

AUROC_KEYS: tuple[str, ...] = (*MARGIN_CLASSES, AVERAGE)


@dataclass(frozen=True)
class ComparedModel:
    """One row of the comparison: `name` (its key in table1.json), `label` (its name in the table), its test
    predictions, the activation part of its metrics.json (None for a model without prototypes), and the
    summaries of its saliency maps {method: {"activation_precision": ..., "activation_area": ...}}."""

    name: str
    label: str
    predictions: Predictions
    activation: Mapping[str, Any] | None = None
    saliency: Mapping[str, Mapping[str, Any]] | None = None
    source: str = ""
    """The file the predictions came from, for messages."""


def aligned(models: Sequence[ComparedModel]) -> list[ComparedModel]:
    """The models with their prediction rows in the first model's order; ValueError naming the file whose
    test crops differ (e.g. predictions left from another split or data set)."""
    first = models[0].predictions
    order = {str(i): k for k, i in enumerate(first.image_id)}
    if len(order) != len(first.image_id):
        raise ValueError(f"{models[0].source}: an image id occurs twice")
    out = [models[0]]
    for m in models[1:]:
        p = m.predictions
        ids = [str(i) for i in p.image_id]
        if sorted(ids) != sorted(order):
            missing = sorted(set(order) - set(ids))[:3]
            extra = sorted(set(ids) - set(order))[:3]
            raise ValueError(f"{m.source}: its test crops differ from {models[0].source}'s (missing e.g. {missing}, "
                             f"extra e.g. {extra}); rerun its stage on the same data")
        perm = np.argsort([order[i] for i in ids], kind="stable")
        if not np.array_equal(np.asarray(p.labels)[perm], np.asarray(first.labels)):
            raise ValueError(f"{m.source}: its labels differ from {models[0].source}'s for the same crops")
        moved = Predictions(p.image_id[perm], p.patient_id[perm], p.split[perm], p.labels[perm], p.probs[perm])
        out.append(ComparedModel(m.name, m.label, moved, m.activation, m.saliency, m.source))
    return out


def _activation(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The activation keys of a metrics.json (or of a saliency summary) kept in the table."""
    precision = summary.get("activation_precision") or {}
    area = summary.get("activation_area") or {}
    out: dict[str, Any] = {"average": precision.get("average")}
    levels = [f"level_{lv}" for lv in FPN_LEVELS]
    out.update({key: precision[key] for key in levels if precision.get(key) is not None})
    for part in ("chance", "lift"):
        values = precision.get(part) or {}
        out[part] = {key: values.get(key) for key in ("average", *levels) if key == "average" or key in out}
    areas: dict[str, Any] = {"average": area.get("average")}
    areas.update({key: area[key] for key in levels if area.get(key) is not None})
    return {"activation_precision": out, "activation_area": areas}


def comparison_table(models: Sequence[ComparedModel], n_boot: int, level: float, seed: int) -> dict[str, Any]:
    """table1.json (module docstring), the first model being the main one that the others are paired with.

    AUROCs are margin AUROCs among the lesion crops (renormalised margin probabilities, as reports/metrics.json
    `auroc.*`); every model's intervals and paired differences use the same patient-level resamples (the
    same seed over the same patients), as the evaluate stage draws them."""
    if not models:
        raise ValueError("nothing to compare")
    models = aligned(models)
    main = models[0]
    patients = np.asarray(main.predictions.patient_id)
    tasks = {m.name: margin_tasks(m.predictions.labels, m.predictions.probs) for m in models}
    table: dict[str, Any] = {}
    for m in models:
        p = m.predictions
        ci = bootstrap_ci(tasks[m.name], patients, n_boot, level, seed, average_key=AVERAGE)
        row: dict[str, Any] = {
            "auroc": margin_auroc_table(p.labels, p.probs),
            "auroc_ci95": {k: dict(zip(("lo", "hi"), ci.intervals[k], strict=True)) for k in AUROC_KEYS},
            "margin_balanced_accuracy": margin_balanced_accuracy(p.labels, p.probs),
        }
        if m is not main:
            diff = paired_mean_auroc_difference(list(tasks[m.name].values()), list(tasks[main.name].values()),
                                                patients, n_boot, level, seed)
            row["auroc_diff"] = {AVERAGE: diff.point}
            row["auroc_diff_ci95"] = {AVERAGE: dict(zip(("lo", "hi"), diff.interval, strict=True))}
        if m.activation is not None:
            row.update(_activation(m.activation))
        for method, summary in (m.saliency or {}).items():
            row[method] = _activation(summary)
        row["n_test_lesions"] = int(np.sum(tasks[m.name][MARGIN_CLASSES[0]].included))
        table[m.name] = row
    table["n_test_lesions"] = table[main.name]["n_test_lesions"]
    table["n_test_lesion_patients"] = int(ci.n_patients)
    table["bootstrap_samples"] = int(n_boot)
    return nan_to_none(table)


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _ci(interval: Mapping[str, Any] | None) -> str:
    interval = interval or {}
    return f"[{_f(interval.get('lo'))}, {_f(interval.get('hi'))}]"


def _signed(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):+.3f}"


@dataclass(frozen=True)
class TableRows:
    """The table as rows of cells: classification (Table 1) and activation precision (Figure 4 as numbers);
    the header of each first. Rendered as Markdown (table1.md) and HTML (index.html) alike."""

    classification: list[list[str]]
    activation: list[list[str]]


def table_rows(table: Mapping[str, Any], labels: Mapping[str, str], main: str,
               saliency_labels: Mapping[str, str]) -> TableRows:
    """Rows of `table` (comparison_table) for the models of `labels` {name: label}, in that order."""
    main_label = labels[main]
    head = ["model", *[f"AUROC {c}" for c in MARGIN_CLASSES], "AUROC average (95% CI)",
            "margin balanced accuracy", f"average AUROC minus {main_label} (paired 95% CI)"]
    classification = [head]
    for name, label in labels.items():
        row = table[name]
        auroc, ci = row["auroc"], row["auroc_ci95"]
        cells = [label, *[f"{_f(auroc[c])} {_ci(ci[c])}" for c in MARGIN_CLASSES],
                 f"**{_f(auroc[AVERAGE])}** {_ci(ci[AVERAGE])}", _f(row["margin_balanced_accuracy"])]
        if name == main:
            cells.append("(reference)")
        else:
            cells.append(f"{_signed(row['auroc_diff'][AVERAGE])} {_ci(row['auroc_diff_ci95'][AVERAGE])}")
        classification.append(cells)
    activation = [["method", "maps", "activation precision", "chance level", "lift (precision / chance)",
                   "activation area"]]

    def add(label: str, maps: str, summary: Mapping[str, Any], key: str = "average") -> None:
        precision, area = summary["activation_precision"], summary["activation_area"]
        chance = precision["chance"].get(key)
        value = precision.get(key)
        lift = None if value is None or not chance else value / chance
        activation.append([label, maps, _f(value), _f(chance), _f(lift), _f(area.get(key))])

    for name, label in labels.items():
        row = table[name]
        if "activation_precision" in row:
            add(label, "own-class prototypes, all", row)
            for lv in FPN_LEVELS:
                if f"level_{lv}" in row["activation_precision"] and name == main:
                    add(f"{label}, level {lv}", f"own-class prototypes at FPN level {lv}", row, f"level_{lv}")
        for method, method_label in saliency_labels.items():
            if method in row:
                add(f"{method_label} ({label})", "one per crop, predicted class", row[method])
    return TableRows(classification, activation)


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def table_markdown(table: Mapping[str, Any], rows: TableRows, seed: int, command: str) -> str:
    """table1.md: both tables with what they measure, the population and the chance levels."""
    return f"""# Table 1: FPN-IAIA-BL and the baselines on the same test crops

Built by `{command}`. Every model was trained on the same crops, split and seed ({seed}) with the same
epochs; one seed, so the intervals describe the test sample, not the spread over training runs.

## Margin classification among the test lesions

{table['n_test_lesions']} annotated and unannotated test lesions from {table['n_test_lesion_patients']} patients
(negative patches are not in this population). AUROC: one-vs-rest per margin class, scored by the margin
probabilities renormalised over the three margin classes (reports/metrics.json `auroc.*`); chance level 0.5.
Margin balanced accuracy: mean recall of the arg-max over the three margins; chance level 1/3. Intervals:
patient-level bootstrap, {table['bootstrap_samples']} resamples, 95%; the difference column is paired (both
models' AUROCs in each resample of the same patients): an interval that excludes 0 is a difference this test
set can tell.

{_markdown_table(rows.classification)}

## Activation precision on the annotated test lesions

IAIA-BL's metric: the share of a map's pixels at or above its own 95th percentile (map upsampled bilinearly
to the crop) that lie inside the fine annotation (the margin band), averaged over the maps; raw maps over
the whole crop. Chance level: the annotation's mean share of the crop on the same maps (what randomly placed
activation scores). Activation area: the share of the crop where a map reaches half of its own range.
Prototype models: every own-class prototype's map on each annotated lesion; saliency methods: one map per
crop, for the class the model predicts.

{_markdown_table(rows.activation)}
"""
