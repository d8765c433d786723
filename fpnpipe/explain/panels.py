"""Small image panels drawn directly as pixels (numpy + Pillow, no matplotlib figure: a few milliseconds each),
for the report's row of every test crop and the prototype entries: the grey crop with its ROI outline and a
millimetre scale bar, an activation overlay in the colours of the case figures (drawing.COLORMAP over the
same ActivationScale), boxes, and PNG encoding.

Panels are the crop enlarged by an integer factor (nearest neighbour: every crop pixel stays a visible
square) so that a 96 px crop is drawn at 192 px. Boxes are [x0, y0, x1, y1) in crop pixels.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fpnpipe.atomic import atomic_file
from fpnpipe.explain.drawing import COLORMAP, HIGH_BOX_COLOR, RF_BOX_COLOR, ActivationScale

ROI_COLOR = (255, 215, 0)
"""Yellow: the outline of the lesion's ROI mask."""
PANEL_MIN_PX = 160
"""A panel is the crop enlarged by the smallest integer factor that makes it at least this wide."""
GAP_PX = 4
NICE_MM = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
"""Scale-bar lengths to choose from, millimetres."""

RGB = tuple[int, int, int]


def factor_for(size: int) -> int:
    """The enlargement factor of a crop of side `size`."""
    return max(1, math.ceil(PANEL_MIN_PX / size))


def _hex(colour: str) -> RGB:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, ...) -> (H * factor, W * factor, ...) by repeating each pixel."""
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def grey(image: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 grey (0 black, 1 white)."""
    value = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=2)


def overlay(image: np.ndarray, activation: np.ndarray, scale: ActivationScale) -> np.ndarray:
    """(H, W, 3) uint8: the grey crop with the activation (H, W) over it in COLORMAP, whose opacity rises
    with the value (as drawing.show_overlay draws it); values outside the scale take the end colours."""
    norm = np.clip((np.asarray(activation, np.float64) - scale.vmin) / (scale.vmax - scale.vmin), 0.0, 1.0)
    rgba = COLORMAP(norm)  # (H, W, 4) floats in [0, 1]
    base = grey(image).astype(np.float64) / 255.0
    alpha = rgba[..., 3:4]
    blended = base * (1 - alpha) + rgba[..., :3] * alpha
    return np.round(blended * 255).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of `mask` with a 4-neighbour outside it (or on the image edge)."""
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def draw_outline(panel: np.ndarray, mask: np.ndarray, factor: int, colour: RGB = ROI_COLOR) -> None:
    """Colour the outline of a crop-size mask (H, W) on an enlarged panel, one screen pixel wide (in place)."""
    if not np.any(mask):
        return
    edge = outline(enlarge(np.asarray(mask, bool), factor))
    panel[edge] = colour


def draw_box(panel: np.ndarray, box: tuple[int, int, int, int] | np.ndarray, factor: int,
             colour: str = HIGH_BOX_COLOR, width: int = 2, dashed: bool = False) -> None:
    """Outline the crop pixels [x0, y0, x1, y1) on an enlarged panel (in place); nothing for an empty box."""
    x0, y0, x1, y1 = (int(v) * factor for v in box)
    if x1 <= x0 or y1 <= y0:
        return
    h, w = panel.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    rgb = _hex(colour)
    keep = np.ones(max(h, w), bool)
    if dashed:
        keep = (np.arange(max(h, w)) // 4) % 3 != 2
    for t in range(width):
        for y in (y0 + t, y1 - 1 - t):
            if 0 <= y < h:
                xs = np.arange(x0, x1)
                panel[y, xs[keep[xs]]] = rgb
        for x in (x0 + t, x1 - 1 - t):
            if 0 <= x < w:
                ys = np.arange(y0, y1)
                panel[ys[keep[ys]], x] = rgb


def bar_length_mm(mm_per_px: float, width_px: int) -> float | None:
    """The longest NICE_MM length whose bar spans at most a third of the panel's width, if it spans at least
    8 pixels; None when no such length exists."""
    fitting = [mm for mm in NICE_MM if 8 <= mm / mm_per_px <= width_px / 3]
    return fitting[-1] if fitting else None


def draw_scale_bar(panel: np.ndarray, mm_per_px: float) -> float | None:
    """A white bar with a dark edge and its length in mm, bottom left of the panel (in place); mm_per_px is
    millimetres per panel pixel along x. Returns the bar's length in mm (None when none fits)."""
    h, w = panel.shape[:2]
    length = bar_length_mm(mm_per_px, w)
    if length is None:
        return None
    px = round(length / mm_per_px)
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    x0, y1 = 6, h - 6
    draw.rectangle((x0 - 1, y1 - 5, x0 + px, y1 + 1), fill=(0, 0, 0))
    draw.rectangle((x0, y1 - 4, x0 + px - 1, y1), fill=(255, 255, 255))
    label = f"{length:g} mm"
    font = ImageFont.load_default(size=max(11, h // 11))
    draw.text((x0, y1 - 7), label, fill=(255, 255, 255), font=font, anchor="ld", stroke_width=2,
              stroke_fill=(0, 0, 0))
    panel[...] = np.asarray(image)
    return length


def strip(panels: list[np.ndarray]) -> np.ndarray:
    """Panels (h, w_i, 3) side by side with GAP_PX of white between them."""
    h = max(p.shape[0] for p in panels)
    gap = np.full((h, GAP_PX, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for k, p in enumerate(panels):
        if k:
            parts.append(gap)
        parts.append(np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=1)


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG of a (H, W) or (H, W, 3) uint8 array (no timestamp or other metadata: byte-stable)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def save_png(pixels: np.ndarray, path: str | Path) -> None:
    """Write a PNG atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(png_bytes(pixels))



def prototype_panels(source: np.ndarray, self_activation: np.ndarray, high_box: np.ndarray, rf_box: np.ndarray,
                     scale: ActivationScale) -> np.ndarray:
    """A prototype's entry: its source crop (S, S) with the 95th-percentile box of its self-activation (solid
    cyan) and the receptive field of its latent patch (dashed green), beside the self-activation overlay."""
    factor = factor_for(source.shape[-1])
    left = enlarge(grey(source), factor)
    draw_box(left, rf_box, factor, RF_BOX_COLOR, width=1, dashed=True)
    draw_box(left, high_box, factor)
    right = enlarge(overlay(source, self_activation, scale), factor)
    draw_box(right, high_box, factor)
    return strip([left, right])
