"""The frontier figure: margin AUROC among test lesions (y) against activation precision (x), one point per
setting with error bars of one standard deviation over training seeds, the chance levels drawn as lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from fpnpipe.atomic import atomic_file
from fpnpipe.evaluate.sweeps import FrontierPoint


def frontier_figure(points: Sequence[FrontierPoint], dpi: int = 110) -> Figure:
    """One labelled point per setting; error bars = sample std over seeds (none for a single seed)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=dpi)
    chances = [p.chance for p in points if p.chance is not None]
    if chances:
        ax.axvline(sum(chances) / len(chances), color="0.6", linestyle="--", linewidth=1,
                   label="activation precision at chance (annotation's share of the crop)")
    ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1, label="margin AUROC at chance")
    for k, p in enumerate(points):
        xerr = None if math.isnan(p.x.std) else p.x.std
        yerr = None if math.isnan(p.y.std) else p.y.std
        ax.errorbar(p.x.mean, p.y.mean, xerr=xerr, yerr=yerr, fmt="o", capsize=3, color="C0")
        label = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in p.setting.items())
        # labels alternately above and below their point, so neighbouring settings stay readable
        ax.annotate(f"{label} (n={p.y.n})", (p.x.mean, p.y.mean), textcoords="offset points",
                    xytext=(6, 6 if k % 2 == 0 else -12), fontsize=8)
    ax.set_xlabel("activation precision (whole crop, own-class prototypes)")
    ax.set_ylabel("margin AUROC among test lesions (average)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0.4, 1.0)
    ax.set_title("Accuracy against interpretability, mean +- std over training seeds", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | Path) -> None:
    """Write the figure as a PNG atomically (no timestamp in the file), then close it."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
