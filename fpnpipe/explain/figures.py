"""The case-based explanation figure, in the layout of the paper's Figure 3 (after IAIA-BL).

One row per shown prototype, largest contribution to the predicted class first:
a the test crop; b the prototype's activation on it (overlay, 95th-percentile box); c the most relevant
part of the prototype (its source crop cut to its high-activation box); d the prototype's source crop
with that box and the receptive field of its latent patch; e the prototype's self-activation on its
source crop; f similarity x class connection = contribution. A caption above, the sum of all
contributions (the predicted class's logit), the box legend and the colour bar below.

Geometry is in inches, fixed per panel, so a figure's pixel size is (inches x dpi) whatever the crop size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from fpnpipe.atomic import atomic_file
from fpnpipe.classes import CLASSES
from fpnpipe.data.projection_record import ProjectionRecord
from fpnpipe.explain.cases import CaseExplanation, PrototypeRow
from fpnpipe.explain.drawing import (
    COLORBAR_BACKGROUND,
    COLORMAP,
    DUPLICATE_COLOR,
    HIGH_BOX_COLOR,
    RF_BOX_COLOR,
    ActivationScale,
    box_is_empty,
    draw_box,
    mark_duplicate,
    no_source,
    panel_inches,
    show_grey,
    show_overlay,
    show_patch,
)
from fpnpipe.explain.panels import bar_length_mm
from fpnpipe.explain.text import caption, probability_line

ROI_COLOR = "#ffd700"
"""Yellow: the outline of the lesion's ROI mask on the test crop (as in the report's strips)."""

MIN_PANEL_IN = 1.8
"""Smallest side of an image panel, inches; larger when the crop needs it (see drawing.panel_inches)."""
PANEL_COLUMNS: tuple[str, ...] = ("a", "b", "c", "d", "e")
COLUMN_TITLES: dict[str, str] = {
    "a": "a  Test image",
    "b": "b  Prototype activation\non the test image",
    "c": "c  Most relevant part\nof the prototype",
    "d": "d  Prototype's source\n(training image)",
    "e": "e  Prototype\nself-activation",
}
_MARGIN = 0.3
_GAP = 0.15
_SIDE_GAP = 0.4  # between the test side (a, b) and the prototype side (c, d, e)
_TEXT_GAP = 0.3
_TEXT_IN = 3.1
_ROW_GAP = 0.25
_TOP_IN = 1.05  # caption block
_HEADER_IN = 0.5  # column titles
_FOOTER_IN = 1.5
_DEFINITIONS = (
    "similarity: how strongly the prototype is present in the test image (its activation map b pooled by the "
    "model);  class connection: the last layer's weight from the prototype to the class."
)


@dataclass(frozen=True)
class CaseLayout:
    """Where things go, inches from the figure's bottom-left corner; `side` is the side of every image panel."""

    width: float
    height: float
    n_rows: int
    side: float

    def panel(self, row: int, column: str) -> tuple[float, float, float, float]:
        """[left, bottom, width, height] of an image panel."""
        col = PANEL_COLUMNS.index(column)
        left = _MARGIN + col * (self.side + _GAP) + (_SIDE_GAP - _GAP if col >= 2 else 0.0)
        return left, self.row_bottom(row), self.side, self.side

    def row_bottom(self, row: int) -> float:
        return self.height - _TOP_IN - _HEADER_IN - (row + 1) * self.side - row * _ROW_GAP

    @property
    def text_left(self) -> float:
        return self.panel(0, "e")[0] + self.side + _TEXT_GAP

    @staticmethod
    def for_rows(n_rows: int, panel: float = MIN_PANEL_IN) -> CaseLayout:
        width = 2 * _MARGIN + 5 * panel + 3 * _GAP + _SIDE_GAP + _TEXT_GAP + _TEXT_IN
        height = _TOP_IN + _HEADER_IN + n_rows * panel + max(n_rows - 1, 0) * _ROW_GAP + _FOOTER_IN
        return CaseLayout(width, height, n_rows, panel)


def _axes(fig: Figure, layout: CaseLayout, box: tuple[float, float, float, float], label: str) -> Axes:
    """A new axis at `box` [left, bottom, width, height] in inches, labelled for inspection."""
    left, bottom, w, h = box
    ax = fig.add_axes((left / layout.width, bottom / layout.height, w / layout.width, h / layout.height))
    ax.set_label(label)
    return ax


def _row_text(fig: Figure, layout: CaseLayout, r: int, row: PrototypeRow, record: ProjectionRecord) -> None:
    """Column f of one row: which prototype, then similarity x connection = contribution."""
    j = row.prototype
    x = layout.text_left / layout.width
    top = layout.row_bottom(r) + layout.side

    def at(inches_below_top: float) -> float:
        return (top - inches_below_top) / layout.height

    fig.text(x, at(0.05), f"#{r + 1}  prototype {j}", fontsize=11, fontweight="bold", va="top")
    fig.text(x, at(0.3), f"{CLASSES[row.prototype_class]} prototype, FPN level {row.level}", fontsize=10, va="top")
    arithmetic = (
        f"  similarity        {row.similarity:8.3f}\n"
        f"× class connection  {row.connection:+8.3f}\n"
        f"= contribution      {row.contribution:+8.3f}"
    )
    fig.text(x, at(0.62), arithmetic, fontsize=10, family="monospace", va="top", linespacing=1.45)
    source = str(record.source_image_id[j]) or "none"
    fig.text(x, at(1.42), f"source: {source}", fontsize=8.5, color="#333333", va="top", wrap=True)
    duplicate = int(record.duplicate_of[j])
    if duplicate >= 0:
        fig.text(x, at(1.62), f"duplicate of prototype {duplicate}", fontsize=9, color=DUPLICATE_COLOR, va="top")


def _crop_marks(ax: Axes, size: int, roi: np.ndarray | None, mm_per_pixel: float | None) -> None:
    """On panel a (a crop of side `size`): the outline of the lesion's ROI mask (S, S) and a millimetre scale
    bar, when known."""
    if roi is not None and np.any(roi) and not np.all(roi):
        ax.contour(np.asarray(roi, float), levels=[0.5], colors=[ROI_COLOR], linewidths=1.2)
    length = bar_length_mm(mm_per_pixel, size) if mm_per_pixel else None
    if length is not None and mm_per_pixel:
        bar = AnchoredSizeBar(ax.transData, length / mm_per_pixel, f"{length:g} mm", "lower left", pad=0.3,
                              color="white", frameon=False, size_vertical=max(1.0, size / 60),
                              fontproperties={"size": 8})
        ax.add_artist(bar)


def _row_panels(
    fig: Figure, layout: CaseLayout, r: int, case: CaseExplanation, row: PrototypeRow,
    record: ProjectionRecord, scale: ActivationScale, roi: np.ndarray | None, mm_per_pixel: float | None,
) -> None:
    """Panels a-e of one row."""
    j = row.prototype
    source = record.source_image[j]
    high, rf = record.high_box[j], record.rf_box[j]
    ax_a = _axes(fig, layout, layout.panel(r, "a"), f"a{r}")
    show_grey(ax_a, case.image)
    _crop_marks(ax_a, case.image.shape[-1], roi, mm_per_pixel)
    ax_b = _axes(fig, layout, layout.panel(r, "b"), f"b{r}")
    show_overlay(ax_b, case.image, row.activation, scale)
    draw_box(ax_b, row.box)
    ax_c = _axes(fig, layout, layout.panel(r, "c"), f"c{r}")
    ax_d = _axes(fig, layout, layout.panel(r, "d"), f"d{r}")
    ax_e = _axes(fig, layout, layout.panel(r, "e"), f"e{r}")
    if box_is_empty(high):
        for ax in (ax_c, ax_d, ax_e):
            no_source(ax)
        return
    show_patch(ax_c, source, high)
    show_grey(ax_d, source)
    draw_box(ax_d, rf, RF_BOX_COLOR, dashed=True)
    draw_box(ax_d, high)
    show_overlay(ax_e, source, record.self_activation[j], scale)
    draw_box(ax_e, high)
    if int(record.duplicate_of[j]) >= 0:
        for ax in (ax_c, ax_d, ax_e):
            mark_duplicate(ax)


def _header(fig: Figure, layout: CaseLayout, case: CaseExplanation, n_prototypes: int) -> None:
    """Caption, probabilities, case id; then the column titles."""
    w, h = layout.width, layout.height
    x = _MARGIN / w
    fig.text(x, (h - 0.15) / h, caption(case.true_label, case.predicted), fontsize=15, fontweight="bold", va="top")
    fig.text(x, (h - 0.5) / h, "Class probabilities:  " + probability_line(case.probabilities), fontsize=11, va="top")
    fig.text(
        x, (h - 0.78) / h,
        f"Case {case.image_id}.  Rows: the {len(case.rows)} of {n_prototypes} prototypes that contribute most "
        f"to the predicted class ({CLASSES[case.predicted]}), largest first.",
        fontsize=9.5, color="#333333", va="top",
    )
    title_bottom = (h - _TOP_IN - _HEADER_IN + 0.05) / h
    for column in PANEL_COLUMNS:
        left = layout.panel(0, column)[0]
        fig.text((left + layout.side / 2) / w, title_bottom, COLUMN_TITLES[column], fontsize=10, ha="center",
                 va="bottom", fontweight="bold")
    fig.text(layout.text_left / w, title_bottom,
             f"f  Contribution to the\n{CLASSES[case.predicted]} score", fontsize=10, va="bottom", fontweight="bold")


def _footer(fig: Figure, layout: CaseLayout, case: CaseExplanation, scale: ActivationScale) -> None:
    """The sum that gives the logit, the box legend and the colour bar."""
    w, h = layout.width, layout.height
    x = _MARGIN / w
    predicted = CLASSES[case.predicted]
    total = float(case.contributions.sum())
    shown = sum(row.contribution for row in case.rows)
    others = case.contributions.size - len(case.rows)
    fig.text(
        x, (_FOOTER_IN - 0.2) / h,
        f"{predicted} score (logit) = sum over all {case.contributions.size} prototypes of similarity × class "
        f"connection = {total:+.3f}:  rows shown {shown:+.3f},  other {others} prototypes {total - shown:+.3f}.",
        fontsize=10, va="top",
    )
    fig.text(x, (_FOOTER_IN - 0.45) / h, _DEFINITIONS, fontsize=9, va="top", color="#333333")
    fig.text(x, (_FOOTER_IN - 0.8) / h, "Boxes:", fontsize=9.5, va="top")
    fig.text(x + 0.5 / w, (_FOOTER_IN - 0.8) / h, "solid cyan = 95th-percentile high-activation box",
             fontsize=9.5, va="top", color="black", bbox=dict(facecolor="none", edgecolor=HIGH_BOX_COLOR, lw=2))
    fig.text(x + 0.5 / w, (_FOOTER_IN - 1.15) / h, "dashed green = receptive field of the prototype's latent patch",
             fontsize=9.5, va="top", bbox=dict(facecolor="none", edgecolor=RF_BOX_COLOR, lw=1.4, ls="--"))
    left = layout.panel(0, "d")[0]
    bar = fig.add_axes((left / w, 0.6 / h, (2 * layout.side + _GAP) / w, 0.16 / h))
    bar.set_label("colorbar")
    bar.set_facecolor(COLORBAR_BACKGROUND)
    mappable = ScalarMappable(Normalize(scale.vmin, scale.vmax), COLORMAP)
    colorbar = fig.colorbar(mappable, cax=bar, orientation="horizontal")
    colorbar.ax.tick_params(labelsize=9)
    colorbar.set_label(f"b, e: {scale.label}; shown over mid-grey tissue", fontsize=9.5)


def case_figure(case: CaseExplanation, record: ProjectionRecord, scale: ActivationScale, dpi: int = 100, *,
                roi: np.ndarray | None = None, mm_per_pixel: float | None = None) -> Figure:
    """The Figure 3 layout of one explained case, to be saved at `dpi`; `record` is the model's projection
    record (where each prototype came from). Panel a shows the outline of `roi` (S, S), the lesion's mask,
    and a scale bar when `mm_per_pixel` (millimetres per crop pixel) is known. Image panels are labelled
    'a0'..'e<n-1>' (column letter + row) for inspection."""
    if not case.rows:
        raise ValueError(f"case {case.image_id!r} has no prototype rows to draw (a model without prototypes)")
    layout = CaseLayout.for_rows(len(case.rows), panel_inches(case.image.shape[-1], dpi, MIN_PANEL_IN))
    fig = Figure(figsize=(layout.width, layout.height), dpi=dpi, facecolor="white")
    _header(fig, layout, case, case.contributions.size)
    for r, row in enumerate(case.rows):
        _row_panels(fig, layout, r, case, row, record, scale, roi, mm_per_pixel)
        _row_text(fig, layout, r, row, record)
    _footer(fig, layout, case, scale)
    return fig


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write `fig` as a PNG at its own dpi (the one it was laid out for), atomically."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi, facecolor=fig.get_facecolor())
