"""One new image: crop its lesion exactly as preprocessing does, ready for the model.

The crop goes through `fpnpipe.data.lesion_crops.crop_lesions`, the function the preprocess stage runs on
every manifest row: the same reading (DICOM or raster, Modality LUT, MONOCHROME1 inversion, optional VOI),
the same percentile normalisation, the same context box and resizing, and the same refusals (a box outside
the image, a mask of another size, an empty mask, an unreadable file).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fpnpipe.classes import MARGIN_CLASSES
from fpnpipe.config import CropParams
from fpnpipe.data.lesion_crops import ImageJob, crop_lesions
from fpnpipe.data.records import Box, LesionRow

_SOURCE = "explain-image"


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


def crop_new_image(
    image_path: Path, crop: CropParams, voi_window: bool, percentiles: tuple[float, float], *,
    box: Box | None = None, roi: Path | None = None,
) -> np.ndarray:
    """The (crop.size, crop.size) float32 crop in [0, 1] of the lesion given by exactly one of `box`
    (image pixels) or `roi` (a mask file of the image's size). Raises NewImageError naming the file."""
    if (box is None) == (roi is None):
        raise NewImageError("give exactly one of a lesion box or an ROI mask")
    shown = Path(image_path)
    image_path = shown.absolute()
    # The row type needs a class label; preprocessing uses it only to label the crop, and this crop's label
    # is what the model is asked for, so a placeholder margin class goes in and is not read back.
    row = LesionRow(
        source=_SOURCE, row=1, image_path=image_path, image_id=image_path.stem, patient_id=_SOURCE,
        label=MARGIN_CLASSES[0], roi_mask_path=None if roi is None else Path(roi).absolute(), box=box,
    )
    job = ImageJob(image_path=image_path, image_id=image_path.stem, patient_id=_SOURCE, split="test",
                   lesions=(row,), normal_rows=())
    result = crop_lesions(job, crop, voi_window, percentiles)
    if result.rejections:
        raise NewImageError(f"{shown}: {result.rejections[0].reason}")
    return result.crops.images[0]
