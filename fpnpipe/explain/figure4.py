"""Figure-4 style panels (the paper's Figure 4): for one annotated test lesion, the crop, then every method's
activation map on it, side by side, with the fine annotation outlined in each panel: the saliency maps of
a black box (GradCAM, GradCAM++) for its predicted class, and for each prototype model the activation of its
top own-class prototype (the prototype of the crop's true class with the highest pooled similarity).

One colour scale: methods measure in different units (rectified gradients, log-distance and cosine
similarities), so each map is scaled to its own range, 0 = its minimum and 1 = its maximum, and every panel
draws [0, 1] in one colour map. Each panel's title gives the map's activation precision on this crop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from fpnpipe.atomic import atomic_file
from fpnpipe.classes import CLASSES, MARGIN_CLASSES
from fpnpipe.data.dataset import annotated_lesion_rows
from fpnpipe.data.saliency_record import SaliencyRecord
from fpnpipe.data.schema import CropSet
from fpnpipe.explain.drawing import COLORBAR_BACKGROUND, COLORMAP, ActivationScale, show_grey, show_overlay
from fpnpipe.metrics.activation import activation_precision, upsample_maps
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.runtime import Runtime

OUTLINE_COLOR = "#00e5ff"
"""Cyan: the outline of the fine annotation (the margin band) in every panel."""
SCALE = ActivationScale(0.0, 1.0, "each map scaled to its own range (0 = its minimum, 1 = its maximum)")
PANEL_IN = 2.0


@dataclass(frozen=True)
class Panel:
    """One method's map on the case: title, and the map (S, S) at crop size, raw (None: not available)."""

    title: str
    activation: np.ndarray | None


@dataclass(frozen=True)
class Figure4Case:
    """A test lesion: its image id, class index, crop (S, S), fine annotation (S, S) and the method panels."""

    image_id: str
    label: int
    image: np.ndarray
    fine: np.ndarray
    panels: list[Panel]


def figure4_rows(crops: CropSet, n: int) -> np.ndarray:
    """Up to n annotated lesion rows of `crops`, taken in turn from each margin class (each class's rows in
    order of image id), so that the cases cover the classes and no model's output chooses them."""
    rows = annotated_lesion_rows(crops)
    queues = []
    for c in range(len(MARGIN_CLASSES)):
        mine = rows[crops.label[rows] == c]
        queues.append(list(mine[np.argsort([str(i) for i in crops.image_id[mine]], kind="stable")]))
    picked: list[int] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(int(queue.pop(0)))
    return np.array(picked, dtype=np.int64)


@torch.no_grad()
def top_own_class_maps(net: PrototypeNetwork, images: torch.Tensor, labels: np.ndarray,
                       runtime: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """For each image (B, 1, S, S) and its class labels (B,): the raw activation map of the own-class
    prototype with the highest pooled similarity, upsampled to (S, S) (as activation precision sees it),
    and that prototype's global index. Returns ((B, S, S) float32, (B,) int64)."""
    net.eval()
    size = images.shape[-1]
    with runtime.autocast():
        out = net(images.to(runtime.device))
    if out.similarities is None:
        raise ValueError("top_own_class_maps needs a prototype model")
    own = net.prototype_class.to(out.similarities.device)[None, :] == torch.as_tensor(labels).to(
        out.similarities.device)[:, None]
    best = out.similarities.float().masked_fill(~own, float("-inf")).argmax(dim=1)
    maps = np.zeros((len(labels), size, size), np.float32)
    for b, j in enumerate(best.tolist()):
        level = int(net.prototype_level[j])
        rows = net.level_slice(level)
        raw = out.activations[net.levels.index(level)][b, j - rows.start].float()
        maps[b] = upsample_maps(raw, size).cpu().numpy()
    return maps, best.cpu().numpy().astype(np.int64)


def figure4_cases(
    crops: CropSet, rows: np.ndarray, prototype_models: Sequence[tuple[str, PrototypeNetwork]],
    saliency: SaliencyRecord | None, saliency_labels: Mapping[str, str], runtime: Runtime,
) -> list[Figure4Case]:
    """The Figure-4 cases of `rows`: panels = each saliency method of `saliency` (looked up by image id), then
    each prototype model's top own-class prototype map, in the order given."""
    if rows.size == 0:
        return []
    images = torch.from_numpy(np.ascontiguousarray(crops.images[rows], np.float32))[:, None]
    labels = crops.label[rows].astype(np.int64)
    model_maps = []
    for label, net in prototype_models:
        maps, best = top_own_class_maps(net, images, labels, runtime)
        model_maps.append((label, net, maps, best))
    where = {str(i): k for k, i in enumerate(saliency.image_id)} if saliency is not None else {}
    cases = []
    for k, row in enumerate(rows.tolist()):
        image_id = str(crops.image_id[row])
        panels = []
        if saliency is not None:
            for method, title in saliency_labels.items():
                s = where.get(image_id)
                panels.append(Panel(title, None if s is None else saliency.maps[method][s]))
        for label, net, maps, best in model_maps:
            j = int(best[k])
            level = int(net.prototype_level[j])
            where_from = f"level {level}, " if len(net.levels) > 1 else ""
            panels.append(Panel(f"{label}\n({where_from}prototype {j})", maps[k]))
        cases.append(Figure4Case(image_id, int(labels[k]), crops.images[row], crops.fine[row], panels))
    return cases


def _scaled(activation: np.ndarray) -> np.ndarray:
    lo, hi = float(activation.min()), float(activation.max())
    return np.zeros_like(activation) if hi <= lo else (activation - lo) / (hi - lo)


def _outline(ax: Axes, fine: np.ndarray) -> None:
    if fine.any():
        ax.contour(fine.astype(float), levels=[0.5], colors=[OUTLINE_COLOR], linewidths=1.0)


def draw_figure4(case: Figure4Case, dpi: int) -> Figure:
    """The figure: the crop, then one panel per method, the annotation outlined in each; one colour bar."""
    n = 1 + len(case.panels)
    width, height = n * (PANEL_IN + 0.15) + 0.3, PANEL_IN + 1.9
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.suptitle(f"Test lesion {case.image_id}, true class {CLASSES[case.label]} (cyan: the fine annotation)",
                 fontsize=10)
    for k in range(n):
        left = (0.15 + k * (PANEL_IN + 0.15)) / width
        ax = fig.add_axes((left, 1.0 / height, PANEL_IN / width, PANEL_IN / height))
        if k == 0:
            show_grey(ax, case.image)
            ax.set_title("Test image", fontsize=9)
        else:
            panel = case.panels[k - 1]
            if panel.activation is None:
                show_grey(ax, case.image)
                ax.set_title(f"{panel.title}\n(no map)", fontsize=8)
            else:
                show_overlay(ax, case.image, _scaled(panel.activation), SCALE)
                precision = activation_precision(panel.activation, case.fine)
                ax.set_title(f"{panel.title}\nactivation precision {precision:.2f}", fontsize=8)
        _outline(ax, case.fine)
    bar = fig.add_axes((0.25 / width, 0.55 / height, min(4.0, width - 0.5) / width, 0.12 / height))
    bar.set_facecolor(COLORBAR_BACKGROUND)
    colorbar = fig.colorbar(ScalarMappable(Normalize(SCALE.vmin, SCALE.vmax), COLORMAP), cax=bar,
                            orientation="horizontal")
    colorbar.set_label(SCALE.label, fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    return fig


def save_figure4(case: Figure4Case, path: str | Path, dpi: int) -> None:
    """Draw and write the case's PNG atomically."""
    fig = draw_figure4(case, dpi)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor="white")


def _file_name(number: int, image_id: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in image_id)[:60]
    return f"case_{number:02d}_{safe}.png"


def write_figures(directory: str | Path, cases: Sequence[Figure4Case], dpi: int) -> list[tuple[str, str]]:
    """One PNG per case in `directory`; returns (file name, caption) per case, in order."""
    out = []
    for k, case in enumerate(cases, start=1):
        name = _file_name(k, case.image_id)
        save_figure4(case, Path(directory) / name, dpi)
        out.append((name, f"Test lesion {case.image_id} (true class {CLASSES[case.label]}): "
                          + ", ".join(p.title.replace("\n", " ") for p in case.panels)))
    return out
