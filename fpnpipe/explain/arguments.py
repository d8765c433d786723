"""Command-line arguments of explain-image, checked before anything heavy is imported: this module imports
only the standard library (and fpnpipe.data.files, which does too), so a malformed --box or a missing file is
reported in a fraction of a second instead of after torch and the model code have loaded."""

from __future__ import annotations

import math
from pathlib import Path

from fpnpipe.data.files import file_problem

Box = tuple[float, float, float, float]
"""[x0, y0, x1, y1] in image pixels (x = column, y = row); the same as fpnpipe.data.records.Box."""


class NewImageError(ValueError):
    """The new image, its box or its mask cannot be used; the message names the file and the reason."""


def parse_box(text: str) -> Box:
    """'x0,y0,x1,y1' (image pixels, x = column, y = row) -> a box; NewImageError if it is not four finite
    numbers with x1 > x0 and y1 > y0."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise NewImageError(f"--box must be four numbers x0,y0,x1,y1 (image pixels), got {text!r}")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise NewImageError(f"--box {text!r}: x1 must exceed x0 and y1 must exceed y0")
    return x0, y0, x1, y1


def check_inputs(image: Path, roi: Path | None, model: Path) -> None:
    """NewImageError naming the first of the image, the ROI mask or the model checkpoint that is not a
    readable regular file (missing, a directory, a broken link, ...), worded as the later readers word it."""
    problem = file_problem(image)
    if problem is not None:
        raise NewImageError(f"{image}: file {problem}")
    if roi is not None and (problem := file_problem(roi)) is not None:
        raise NewImageError(f"{image}: ROI mask {Path(roi).name}: file {problem}")
    if (problem := file_problem(model)) is not None:
        raise NewImageError(f"{model}: model checkpoint {problem} (train a model with `dvc repro` first, or "
                            "give one with --model)")
