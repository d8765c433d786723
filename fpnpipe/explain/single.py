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
from fpnpipe.data.images import ImageReadError
from fpnpipe.data.lesion_crops import Annotation, CropRefused, crop_lesion, load_image, read_named_mask
from fpnpipe.explain.arguments import Box, NewImageError
from fpnpipe.reasons import reveal


def crop_new_image(
    image_path: Path, crop: CropParams, voi_window: bool, percentiles: tuple[float, float], *,
    box: Box | None = None, roi: Path | None = None,
) -> np.ndarray:
    """The (crop.size, crop.size) float32 crop in [0, 1] of the lesion given by exactly one of `box`
    (image pixels) or `roi` (a mask file of the image's size). Raises NewImageError naming the file."""
    if (box is None) == (roi is None):
        raise NewImageError("give exactly one of a lesion box or an ROI mask")
    try:
        image = load_image(Path(image_path), voi_window, percentiles)
        annotation = Annotation(box=box) if roi is None else Annotation(roi=read_named_mask(Path(roi), "ROI mask"))
        return crop_lesion(image, annotation, crop).image
    except (ImageReadError, CropRefused, ValueError) as exc:
        # The user's own terminal: quoted file names are shown (reveal), as in preprocessing's log.
        raise NewImageError(f"{image_path}: {reveal(getattr(exc, 'reason', None) or str(exc))}") from None
