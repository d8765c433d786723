"""One new image: crop its lesion exactly as preprocessing does, ready for the model.

The image is read and normalised by `fpnpipe.data.lesion_crops.load_image` and the lesion cut by
`fpnpipe.data.lesion_crops.crop_lesion`, the functions preprocessing runs on every manifest row: the same
reading (DICOM or raster, Modality LUT, MONOCHROME1 inversion, optional VOI), the same percentile
normalisation, the same context box and resizing, and the same refusals (a box outside the image, a mask of
another size, an empty mask, an unreadable or constant file, a crop mostly outside the image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fpnpipe.config import CropParams
from fpnpipe.data.images import ImageReadError, read_header
from fpnpipe.data.lesion_crops import (
    Annotation,
    CropRefused,
    LesionCrop,
    crop_lesion,
    load_image,
    read_named_mask,
)
from fpnpipe.explain.arguments import Box, NewImageError
from fpnpipe.reasons import reveal


def crop_new_lesion(
    image_path: Path, crop: CropParams, voi_window: bool, percentiles: tuple[float, float], *,
    box: Box | None = None, roi: Path | None = None,
) -> tuple[LesionCrop, float | None]:
    """The lesion given by exactly one of `box` (image pixels) or `roi` (a mask file of the image's size),
    cropped as preprocessing crops it, and the millimetres per crop pixel along x (None when the file states
    no pixel spacing). Raises NewImageError naming the file."""
    if (box is None) == (roi is None):
        raise NewImageError("give exactly one of a lesion box or an ROI mask")
    try:
        image = load_image(Path(image_path), voi_window, percentiles)
        annotation = Annotation(box=box) if roi is None else Annotation(roi=read_named_mask(Path(roi), "ROI mask"))
        lesion = crop_lesion(image, annotation, crop)
        spacing = read_header(Path(image_path)).pixel_spacing_mm
    except (ImageReadError, CropRefused, ValueError) as exc:
        # The user's own terminal: quoted file names are shown (reveal), as in preprocessing's log.
        raise NewImageError(f"{image_path}: {reveal(getattr(exc, 'reason', None) or str(exc))}") from None
    x0, _, x1, _ = lesion.box
    return lesion, None if spacing is None else (x1 - x0) / crop.size * spacing[1]


def crop_new_image(
    image_path: Path, crop: CropParams, voi_window: bool, percentiles: tuple[float, float], *,
    box: Box | None = None, roi: Path | None = None,
) -> np.ndarray:
    """The (crop.size, crop.size) float32 crop in [0, 1] of crop_new_lesion."""
    return crop_new_lesion(image_path, crop, voi_window, percentiles, box=box, roi=roi)[0].image
