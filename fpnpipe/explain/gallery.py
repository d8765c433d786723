"""The prototype gallery, in the spirit of the paper's Figure 5: one figure per FPN level, one block of
rows per class, every prototype of that level and class as a pair of panels: its source training crop with
the 95th-percentile box of its self-activation (and the receptive field of its latent patch), and the
self-activation itself. A prototype that duplicates another (same class, same source patch) is framed red.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from fpnpipe.classes import CLASSES, FPN_LEVELS
from fpnpipe.data.projection_record import ProjectionRecord
from fpnpipe.explain.drawing import (
    COLORBAR_BACKGROUND,
    COLORMAP,
    DUPLICATE_COLOR,
    RF_BOX_COLOR,
    ActivationScale,
    box_is_empty,
    draw_box,
    mark_duplicate,
    no_source,
    panel_inches,
    show_grey,
    show_overlay,
)

MIN_PANEL_IN = 1.45
"""Smallest side of an image panel, inches; larger when the crop needs it (see drawing.panel_inches)."""
PER_ROW = 4
"""Prototypes per figure row before a class wraps onto another row."""
_MARGIN = 0.3
_LABEL_IN = 1.5
_PAIR_GAP = 0.06
_PROTO_GAP = 0.35
_TITLE_IN = 0.45
_CLASS_GAP = 0.3
_TITLE_BLOCK_IN = 0.5  # the level's title line
_LINE_IN = 0.18  # one line of the legend paragraph
_FOOTER_IN = 0.95
_CHAR_IN = 0.08
"""Mean width of a character at 9.5 pt, inches, to wrap the legend to the figure."""
_LEGEND = (
    "Left of each pair: the training crop the prototype was projected onto, with the 95th-percentile box of its "
    "self-activation (solid cyan) and the receptive field of its latent patch (dashed green). Right: the "
    "self-activation. A red frame marks a duplicate prototype."
)


def gallery_levels(record: ProjectionRecord) -> tuple[int, ...]:
    """The FPN levels that have prototypes, finest first."""
    return tuple(sorted({int(v) for v in record.prototype_level}))


def _level_words(level: int, levels: tuple[int, ...]) -> str:
    """How fine a level is among the model's `levels`, in words, for the legend ('' for a single level)."""
    if len(levels) == 1:
        return ""
    if level == FPN_LEVELS[0]:
        return "Finest scale: the most localised prototypes"
    if level == FPN_LEVELS[-1]:
        return "Coarsest scale: prototypes that cover large parts of the crop"
    return "Intermediate scale"


@dataclass(frozen=True)
class GalleryLayout:
    """Inches from the bottom-left corner. blocks: per class with prototypes, (class, prototype indices);
    legend: the paragraph under the title, wrapped to the figure's width; panel: side of an image panel."""

    width: float
    height: float
    columns: int
    blocks: tuple[tuple[int, tuple[int, ...]], ...]
    legend: str
    panel: float

    @property
    def top(self) -> float:
        """Height of the title block (title + legend + a gap), inches."""
        return _TITLE_BLOCK_IN + (self.legend.count("\n") + 1) * _LINE_IN + 0.25

    def block_top(self, b: int) -> float:
        used = sum(self.rows(k) * (_TITLE_IN + self.panel) + _CLASS_GAP for k in range(b))
        return self.height - self.top - used

    def rows(self, b: int) -> int:
        return -(-len(self.blocks[b][1]) // self.columns)

    def pair(self, b: int, i: int) -> tuple[float, float]:
        """(left, bottom) of the i-th prototype's first panel in block b."""
        row, col = divmod(i, self.columns)
        left = _MARGIN + _LABEL_IN + col * (2 * self.panel + _PAIR_GAP + _PROTO_GAP)
        bottom = self.block_top(b) - (row + 1) * (_TITLE_IN + self.panel)
        return left, bottom

    @staticmethod
    def for_level(record: ProjectionRecord, level: int, panel: float = MIN_PANEL_IN) -> GalleryLayout:
        blocks = []
        for c in range(len(CLASSES)):
            members = np.nonzero((record.prototype_level == level) & (record.prototype_class == c))[0]
            if members.size:
                blocks.append((c, tuple(int(j) for j in members)))
        if not blocks:
            raise ValueError(f"no prototypes at FPN level {level}")
        columns = min(PER_ROW, max(len(m) for _, m in blocks))
        rows = sum(-(-len(m) // columns) for _, m in blocks)
        width = 2 * _MARGIN + _LABEL_IN + columns * (2 * panel + _PAIR_GAP) + (columns - 1) * _PROTO_GAP
        words = _level_words(level, gallery_levels(record))
        text = f"{words}. {_LEGEND}" if words else _LEGEND
        legend = textwrap.fill(text, int((width - 2 * _MARGIN) / _CHAR_IN))
        layout = GalleryLayout(0.0, 0.0, columns, tuple(blocks), legend, panel)
        height = layout.top + rows * (_TITLE_IN + panel) + len(blocks) * _CLASS_GAP + _FOOTER_IN
        return GalleryLayout(width, height, columns, tuple(blocks), legend, panel)


def _prototype(fig: Figure, layout: GalleryLayout, b: int, i: int, j: int, record: ProjectionRecord,
               scale: ActivationScale) -> None:
    """The two panels and the title of prototype j."""
    w, h = layout.width, layout.height
    left, bottom = layout.pair(b, i)
    p = layout.panel
    src = fig.add_axes((left / w, bottom / h, p / w, p / h))
    src.set_label(f"source{j}")
    act = fig.add_axes(((left + p + _PAIR_GAP) / w, bottom / h, p / w, p / h))
    act.set_label(f"self{j}")
    level, cls = int(record.prototype_level[j]), CLASSES[int(record.prototype_class[j])]
    centre = (left + p + _PAIR_GAP / 2) / w
    fig.text(centre, (bottom + p + 0.26) / h, f"prototype {j}: {cls}, level {level}", fontsize=9.5,
             fontweight="bold", ha="center", va="bottom")
    duplicate = int(record.duplicate_of[j])
    second = f"projection similarity {float(record.similarity[j]):.3f}"
    fig.text(centre, (bottom + p + 0.05) / h,
             f"DUPLICATE of prototype {duplicate}" if duplicate >= 0 else second, fontsize=9, ha="center",
             va="bottom", color=DUPLICATE_COLOR if duplicate >= 0 else "#333333")
    if box_is_empty(record.high_box[j]):
        no_source(src)
        no_source(act)
        return
    show_grey(src, record.source_image[j])
    draw_box(src, record.rf_box[j], RF_BOX_COLOR, dashed=True)
    draw_box(src, record.high_box[j])
    show_overlay(act, record.source_image[j], record.self_activation[j], scale)
    draw_box(act, record.high_box[j])
    if duplicate >= 0:
        mark_duplicate(src)
        mark_duplicate(act)


def gallery_figure(record: ProjectionRecord, level: int, scale: ActivationScale, dpi: int = 100) -> Figure:
    """Every prototype of FPN `level` in `record`, grouped by class, to be saved at `dpi`. Panels are
    labelled 'source<j>' / 'self<j>' for inspection."""
    panel = panel_inches(record.source_image.shape[-1], dpi, MIN_PANEL_IN)
    layout = GalleryLayout.for_level(record, level, panel)
    w, h = layout.width, layout.height
    fig = Figure(figsize=(w, h), dpi=dpi, facecolor="white")
    x = _MARGIN / w
    fig.text(x, (h - 0.15) / h, f"FPN level {level} prototypes", fontsize=14, fontweight="bold", va="top")
    fig.text(x, (h - _TITLE_BLOCK_IN) / h, layout.legend, fontsize=9.5, va="top", color="#333333",
             linespacing=1.3)
    for b, (c, members) in enumerate(layout.blocks):
        top = layout.block_top(b)
        rows = layout.rows(b)
        fig.text(x, (top - rows * (_TITLE_IN + layout.panel) / 2) / h, CLASSES[c], fontsize=12, fontweight="bold",
                 va="center")
        for i, j in enumerate(members):
            _prototype(fig, layout, b, i, j, record, scale)
    bar_width = min(3.6, w - 2 * _MARGIN - _LABEL_IN)
    bar = fig.add_axes(((_MARGIN + _LABEL_IN) / w, 0.5 / h, bar_width / w, 0.15 / h))
    bar.set_label("colorbar")
    bar.set_facecolor(COLORBAR_BACKGROUND)
    colorbar = fig.colorbar(ScalarMappable(Normalize(scale.vmin, scale.vmax), COLORMAP), cax=bar,
                            orientation="horizontal")
    colorbar.ax.tick_params(labelsize=9)
    colorbar.set_label(f"self-activation: {scale.label}", fontsize=9.5)
    return fig
