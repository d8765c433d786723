"""PNG renderings of the pipeline's DVC plots, so that they can be read offline (`dvc plots show` writes a page
that loads the Vega libraries from the internet, and is blank without it):

- the training curves that DVCLive writes as TSV files (dvclive/<stage>/plots/metrics/**/<metric>.tsv, columns
  `step` and the metric): one panel per metric, one line per series (train, val, projected/val, ...);
- the ROC curves of evaluate (reports/plots/roc_<name>.json, rows {"fpr", "tpr"}): the three margin classes
  among test lesions in one panel, lesion vs negative in another, each with the chance diagonal;
- the confusion matrix (reports/plots/confusion.json, rows {"actual", "predicted"}): counts and row shares.

Each function reads files and returns a matplotlib Figure, or None when its inputs are absent.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fpnpipe.classes import CLASSES, MARGIN_CLASSES

PANEL_W, PANEL_H = 3.2, 2.4
"""Inches per training-curve panel."""
COLUMNS = 4
"""Training-curve panels per row."""


class PlotInputError(ValueError):
    """A plot file exists but cannot be read; the message names the file."""


@dataclass(frozen=True)
class Series:
    """One TSV file: name (its folder below plots/metrics, e.g. 'train' or 'projected/val'), metric (its
    stem), steps (K,) and values (K,)."""

    name: str
    metric: str
    steps: np.ndarray
    values: np.ndarray


def read_series(path: Path, root: Path) -> Series:
    """A DVCLive TSV (header with a `step` column and the metric's column, named as the file) -> Series."""
    metric = path.stem
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PlotInputError(f"{path}: cannot read ({exc})") from None
    if rows and ("step" not in rows[0] or metric not in rows[0]):
        raise PlotInputError(f"{path}: expected columns 'step' and {metric!r}, got {list(rows[0])}")
    try:
        steps = np.array([float(r["step"]) for r in rows])
        values = np.array([float(r[metric]) for r in rows])
    except (TypeError, ValueError) as exc:
        raise PlotInputError(f"{path}: a value is not a number ({exc})") from None
    name = path.parent.relative_to(root).as_posix()
    return Series("" if name == "." else name, metric, steps, values)


def read_curves(live_dir: Path) -> list[Series]:
    """Every series under `live_dir`/plots/metrics, sorted by metric then series name; [] when absent."""
    root = Path(live_dir) / "plots" / "metrics"
    if not root.is_dir():
        return []
    series = [read_series(p, root) for p in sorted(root.rglob("*.tsv"))]
    return sorted(series, key=lambda s: (s.metric, s.name))


def training_curves_figure(title: str, series: list[Series], dpi: int) -> Figure | None:
    """One panel per metric, one line per series (x = step, i.e. epoch); None without series."""
    if not series:
        return None
    metrics = sorted({s.metric for s in series})
    rows = math.ceil(len(metrics) / COLUMNS)
    cols = min(COLUMNS, len(metrics))
    fig = Figure(figsize=(cols * PANEL_W, rows * PANEL_H + 0.6), dpi=dpi, facecolor="white")
    fig.suptitle(title, fontsize=12, fontweight="bold")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, metric in enumerate(metrics):
        ax = axes[k // cols][k % cols]
        for s in (s for s in series if s.metric == metric):
            ax.plot(s.steps, s.values, marker="o" if len(s.steps) < 15 else None, ms=3, lw=1.5,
                    label=s.name or metric)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("step (epoch)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for k in range(len(metrics), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlotInputError(f"{path}: cannot read ({exc})") from None


def _roc_points(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    rows = _read_json(path)
    if rows is None:
        return None
    try:
        return np.array([float(r["fpr"]) for r in rows]), np.array([float(r["tpr"]) for r in rows])
    except (TypeError, KeyError, ValueError) as exc:
        raise PlotInputError(f"{path}: rows must be {{'fpr', 'tpr'}} numbers ({exc})") from None


def _auc_label(name: str, value: Any) -> str:
    return f"{name} (AUROC {value:.3f})" if isinstance(value, (int, float)) else f"{name} (AUROC n/a)"


def roc_figure(plots_dir: Path, metrics: Mapping[str, Any] | None, dpi: int) -> Figure | None:
    """Left: the margin classes' ROC among test lesions; right: lesion vs negative. None when no curve exists."""
    plots_dir = Path(plots_dir)
    margin = {name: _roc_points(plots_dir / f"roc_{name}.json") for name in MARGIN_CLASSES}
    detection = _roc_points(plots_dir / "roc_detection.json")
    if detection is None and all(v is None for v in margin.values()):
        return None
    auroc = (metrics or {}).get("auroc") or {}
    det_auroc = ((metrics or {}).get("detection") or {}).get("auroc")
    fig = Figure(figsize=(10, 4.6), dpi=dpi, facecolor="white")
    left, right = fig.subplots(1, 2)
    for name, points in margin.items():
        if points is not None and points[0].size:
            left.plot(*points, lw=1.8, label=_auc_label(name, auroc.get(name)))
    left.set_title("Margin class among test lesions (one-vs-rest)", fontsize=10)
    if detection is not None and detection[0].size:
        right.plot(*detection, lw=1.8, color="#444444", label=_auc_label("lesion vs negative", det_auroc))
    right.set_title("Detection: lesion vs negative patch", fontsize=10)
    for ax in (left, right):
        ax.plot([0, 1], [0, 1], ls="--", lw=1, color="#999999", label="chance (AUROC 0.5)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("ROC curves, test split", fontsize=12, fontweight="bold")
    fig.tight_layout()
    return fig


def confusion_counts(rows: list[Mapping[str, Any]], source: Path) -> np.ndarray:
    """(C, C) int counts, rows = actual class, columns = predicted, in CLASSES order."""
    counts = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for k, row in enumerate(rows):
        try:
            counts[CLASSES.index(row["actual"]), CLASSES.index(row["predicted"])] += 1
        except (TypeError, KeyError, ValueError):
            raise PlotInputError(f"{source}: row {k} is not {{'actual', 'predicted'}} with class names") from None
    return counts


def confusion_figure(plots_dir: Path, dpi: int) -> Figure | None:
    """The confusion matrix of the test split: counts, and each cell's share of its actual class."""
    path = Path(plots_dir) / "confusion.json"
    rows = _read_json(path)
    if rows is None:
        return None
    counts = confusion_counts(rows, path)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    fig = Figure(figsize=(6.2, 5.4), dpi=dpi, facecolor="white")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            ax.text(j, i, f"{counts[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=9,
                    color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=20, fontsize=9)
    ax.set_yticks(range(len(CLASSES)), [f"{c} ({int(t)})" for c, t in zip(CLASSES, totals[:, 0], strict=True)],
                  fontsize=9)
    ax.set_xlabel("predicted class (arg-max over the four)")
    ax.set_ylabel("actual class (test crops)")
    ax.set_title(f"Confusion matrix, test split ({int(counts.sum())} crops)", fontsize=11, fontweight="bold")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046)
    colorbar.set_label("share of the actual class")
    fig.tight_layout()
    return fig
