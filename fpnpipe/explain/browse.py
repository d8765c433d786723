"""Every test crop, browsable: for each one a small strip (the crop with its ROI outline and a millimetre
scale bar, then the activation of each of its top prototypes with the 95th-percentile box), the activation
maps behind it as arrays (.npz), where it lies in its mammogram (a thumbnail of the source image, shared by
the crops of that image, with the crop box drawn by the page), and a summary for the page.

Files, relative to the report folder: crops/<n>_<id>.png, maps/<n>_<id>.npz, images/<k>_<image id>.png.
A maps file holds: image_id, test_row (the row of reports/predictions.csv), image (S, S) uint8 crop, roi (S, S)
uint8, and per shown prototype r (largest contribution first) prototype, level, similarity, class_connection,
contribution (k,) and map_<r> (h, w) float32, the prototype's patch-similarity map at its FPN level's grid
resolution (upsample it bilinearly, align_corners=False, to S x S to overlay it on the crop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpnpipe.arrays import write_npz
from fpnpipe.data.thumbnails import Thumbnail, source_image_id
from fpnpipe.explain.cases import CaseExplanation, case_record
from fpnpipe.explain.drawing import ActivationScale
from fpnpipe.explain.panels import (
    draw_box,
    draw_outline,
    draw_scale_bar,
    enlarge,
    factor_for,
    grey,
    overlay,
    save_png,
    strip,
)
from fpnpipe.explain.text import safe_name


def mm_per_crop_pixel(source_box: np.ndarray, crop_size: int, thumbnail: Thumbnail | None) -> float | None:
    """Millimetres per crop pixel along x: the crop box's width in source pixels / the crop size x the source
    image's column spacing; None when the spacing is unknown."""
    if thumbnail is None or thumbnail.pixel_spacing_mm is None:
        return None
    x0, _, x1, _ = (float(v) for v in source_box)
    return (x1 - x0) / crop_size * thumbnail.pixel_spacing_mm[1]


def crop_panel(image: np.ndarray, roi: np.ndarray, mm_per_px: float | None) -> tuple[np.ndarray, float | None]:
    """The enlarged grey crop (S, S) with the outline of its ROI mask (S, S) and, when mm_per_px (crop pixel)
    is known, a scale bar; returns the panel and the bar's length in mm (None without a bar)."""
    factor = factor_for(image.shape[-1])
    panel = enlarge(grey(image), factor)
    draw_outline(panel, roi, factor)
    bar = draw_scale_bar(panel, mm_per_px / factor) if mm_per_px else None
    return panel, bar


def case_strip(case: CaseExplanation, roi: np.ndarray, mm_per_px: float | None,
               scale: ActivationScale) -> tuple[np.ndarray, float | None]:
    """The crop panel, then one activation panel per prototype row of `case` (its box in cyan)."""
    first, bar = crop_panel(case.image, roi, mm_per_px)
    factor = factor_for(case.image.shape[-1])
    panels = [first]
    for row in case.rows:
        panel = enlarge(overlay(case.image, row.activation, scale), factor)
        draw_box(panel, row.box, factor)
        panels.append(panel)
    return strip(panels), bar


def case_arrays(case: CaseExplanation, roi: np.ndarray, test_row: int) -> dict[str, np.ndarray]:
    """The content of a case's .npz (see the module docstring)."""
    rows = case.rows
    out: dict[str, np.ndarray] = {
        "image_id": np.array(case.image_id, dtype=np.str_),
        "test_row": np.array(test_row, dtype=np.int64),
        "image": np.round(np.clip(case.image, 0, 1) * 255).astype(np.uint8),
        "roi": np.asarray(roi, np.uint8),
        "prototype": np.array([r.prototype for r in rows], np.int64),
        "level": np.array([r.level for r in rows], np.int64),
        "similarity": np.array([r.similarity for r in rows], np.float64),
        "class_connection": np.array([r.connection for r in rows], np.float64),
        "contribution": np.array([r.contribution for r in rows], np.float64),
    }
    for r, row in enumerate(rows):
        out[f"map_{r}"] = row.native.astype(np.float32)
    return out


@dataclass
class ImageThumbnails:
    """The mammogram thumbnails the page shows, written once each as images/<k>_<id>.png."""

    folder: Path
    thumbnails: Mapping[str, Thumbnail]
    written: dict[str, str] = field(default_factory=dict)

    def locate(self, crop_id: str, source_box: np.ndarray) -> dict[str, Any] | None:
        """{"image": path of the thumbnail, "box": [left, top, width, height] of the crop box in percent of the
        thumbnail, "image_id"} for a crop, or None when its image has no thumbnail."""
        image_id = source_image_id(crop_id, self.thumbnails)
        if image_id is None:
            return None
        thumb = self.thumbnails[image_id]
        if image_id not in self.written:
            name = f"images/{len(self.written) + 1:03d}_{safe_name(image_id)}.png"
            save_png(thumb.pixels, self.folder / name)
            self.written[image_id] = name
        h, w = thumb.source_shape
        x0, y0, x1, y1 = (float(v) for v in source_box)
        box = [100 * x0 / w, 100 * y0 / h, 100 * (x1 - x0) / w, 100 * (y1 - y0) / h]
        return {"image": self.written[image_id], "image_id": image_id, "box": [round(v, 3) for v in box]}


def browse_record(case: CaseExplanation, number: int, strip_path: str, maps_path: str, bar_mm: float | None,
                  mm_per_px: float | None, source: dict[str, Any] | None, figure: str | None,
                  figure_number: int | None) -> dict[str, Any]:
    """A crop's entry in cases.json "crops": case_record's fields plus its number, files, scale and source."""
    record = case_record(case, figure)
    record.update({
        "number": number,
        "strip": strip_path,
        "maps": maps_path,
        "scale_bar_mm": bar_mm,
        "mm_per_pixel": None if mm_per_px is None else round(mm_per_px, 6),
        "source": source,
        "case_number": figure_number,
    })
    return record


def write_crop_entry(folder: Path, case: CaseExplanation, number: int, digits: int, test_row: int,
                     roi: np.ndarray, source_box: np.ndarray, images: ImageThumbnails, scale: ActivationScale | None,
                     figure: str | None, figure_number: int | None) -> dict[str, Any]:
    """Write a test crop's strip and maps into `folder` and return its cases.json entry. Without a scale
    (a model without prototypes) the strip is the crop panel alone."""
    stem = f"{number:0{digits}d}_{safe_name(case.image_id)}"
    thumb_id = source_image_id(case.image_id, images.thumbnails)
    mm_per_px = mm_per_crop_pixel(source_box, case.image.shape[-1],
                                  images.thumbnails[thumb_id] if thumb_id is not None else None)
    if scale is not None:
        pixels, bar = case_strip(case, roi, mm_per_px, scale)
    else:
        pixels, bar = crop_panel(case.image, roi, mm_per_px)
    save_png(pixels, folder / f"crops/{stem}.png")
    write_npz(folder / f"maps/{stem}.npz", case_arrays(case, roi, test_row))
    source = images.locate(case.image_id, source_box)
    return browse_record(case, number, f"crops/{stem}.png", f"maps/{stem}.npz", bar, mm_per_px, source, figure,
                         figure_number)
