"""Panel primitives shared by the case figures and the gallery: the grey crop, the activation overlay in
one perceptually uniform colour map, the boxes, and the scale of the activation colours.

Pixel convention (as everywhere in fpnpipe): a box is [x0, y0, x1, y1) in crop pixels, x = column,
y = row; imshow puts pixel (row i, column j) centred on (j, i), so its edges lie at half-integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from fpnpipe.model.similarity import Similarity

Box = tuple[int, int, int, int]

COLORMAP_NAME = "magma"
"""The one colour map of every activation panel (perceptually uniform; holds no cyan, so the boxes stand out)."""
MAX_ALPHA = 0.85
"""Opacity of the overlay at the top of the scale; it falls linearly to 0 at the bottom, so weak
activation leaves the grey crop as it is and strong activation covers it."""
HIGH_BOX_COLOR = "#00e5ff"
"""Solid cyan: the 95th-percentile high-activation box."""
RF_BOX_COLOR = "#7CFC00"
"""Dashed light green: the receptive field of the prototype's latent patch."""
DUPLICATE_COLOR = "#d62728"
"""Red: the frame and words that mark a prototype duplicating another."""
COLORBAR_BACKGROUND = "#808080"
"""The colour bar is drawn over mid-grey, so its colours look as they do over tissue."""


@dataclass(frozen=True)
class ActivationScale:
    """The value range [vmin, vmax] that the colour map spans in every activation panel of a figure, and
    what the values are (for the colour bar's label). Values outside are drawn in the end colours."""

    vmin: float
    vmax: float
    label: str

    def __post_init__(self) -> None:
        if not (np.isfinite(self.vmin) and np.isfinite(self.vmax) and self.vmax > self.vmin):
            raise ValueError(f"activation scale needs finite vmin < vmax, got [{self.vmin}, {self.vmax}]")


def activation_scale(similarity: Similarity, self_activation: np.ndarray) -> ActivationScale:
    """The colour range for a model's patch similarities, as its similarity defines it (e.g. the fixed
    [0, 1] of cosine; [0, the largest self-activation] of IAIA-BL's log form). self_activation: (m, S, S)."""
    vmin, vmax = similarity.colour_range(self_activation)
    return ActivationScale(vmin, vmax, similarity.value_label)


def overlay_colormap() -> ListedColormap:
    """COLORMAP_NAME with an opacity ramp from 0 (bottom of the scale) to MAX_ALPHA (top)."""
    colours = colormaps[COLORMAP_NAME](np.linspace(0.0, 1.0, 256))
    colours[:, 3] = np.linspace(0.0, MAX_ALPHA, 256)
    return ListedColormap(colours, name=f"{COLORMAP_NAME}_overlay")


COLORMAP = overlay_colormap()


def panel_inches(crop_size: int, dpi: int, minimum: float) -> float:
    """Side of an image panel, inches: `minimum`, or more when a crop of `crop_size` pixels needs it to get
    at least one screen pixel per crop pixel at `dpi` (a smaller panel would drop rows and columns, and a
    fine spicule with them)."""
    return max(minimum, crop_size / dpi)


def bare(ax: Axes) -> None:
    """No ticks or tick labels; a thin dark frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.6)
        spine.set_color("#444444")


def show_grey(ax: Axes, image: np.ndarray) -> AxesImage:
    """A crop (H, W) in [0, 1] in mammogram grey (0 black, 1 white), pixels as they are (nearest)."""
    bare(ax)
    return ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")


def show_overlay(ax: Axes, image: np.ndarray, activation: np.ndarray, scale: ActivationScale) -> AxesImage:
    """The grey crop (H, W) with an activation map (H, W) over it in COLORMAP (opacity rising with the value)."""
    show_grey(ax, image)
    return ax.imshow(activation, cmap=COLORMAP, vmin=scale.vmin, vmax=scale.vmax, interpolation="nearest")


def box_is_empty(box: Box | np.ndarray) -> bool:
    """True for a box without pixels (e.g. a prototype that found no source patch)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return x1 <= x0 or y1 <= y0


def draw_box(ax: Axes, box: Box | np.ndarray, color: str = HIGH_BOX_COLOR, dashed: bool = False) -> None:
    """Outline the pixels of `box` [x0, y0, x1, y1) on an image axis, on top of the images."""
    if box_is_empty(box):
        return
    x0, y0, x1, y1 = (int(v) for v in box)
    ax.add_patch(
        Rectangle(
            (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color,
            linewidth=1.4 if dashed else 2.0, linestyle=(0, (4, 2)) if dashed else "-", zorder=5,
        )
    )


def cut(image: np.ndarray, box: Box | np.ndarray) -> np.ndarray:
    """The part of a crop (H, W) inside `box`, as a (y1 - y0, x1 - x0) array; the whole crop if the box
    is empty."""
    if box_is_empty(box):
        return image
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[y0:y1, x0:x1]


def show_patch(ax: Axes, image: np.ndarray, box: Box | np.ndarray) -> AxesImage:
    """The crop cut to `box`, enlarged to fill the square panel (nearest: the pixels stay visible) with
    its aspect ratio kept."""
    part = cut(image, box)
    bare(ax)
    h, w = part.shape
    side = max(h, w)
    # Centre a non-square patch in a square window without stretching it.
    extent = ((side - w) / 2 - 0.5, (side + w) / 2 - 0.5, (side + h) / 2 - 0.5, (side - h) / 2 - 0.5)
    shown = ax.imshow(part, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", extent=extent)
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(side - 0.5, -0.5)
    ax.set_facecolor("white")
    # Outline the patch itself in the box colour: it is the content of the high-activation box.
    ax.add_patch(Rectangle((extent[0], extent[3]), w, h, fill=False, edgecolor=HIGH_BOX_COLOR, linewidth=2.0))
    return shown


def mark_duplicate(ax: Axes) -> None:
    """A thick red frame: this prototype duplicates another one."""
    for spine in ax.spines.values():
        spine.set_linewidth(3.0)
        spine.set_color(DUPLICATE_COLOR)


def no_source(ax: Axes) -> None:
    """An empty panel that says the prototype has no source patch (it found no image of its class)."""
    bare(ax)
    ax.set_facecolor("#eeeeee")
    ax.text(0.5, 0.5, "no source\npatch", ha="center", va="center", transform=ax.transAxes, fontsize=9)
