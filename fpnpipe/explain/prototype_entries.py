"""One entry per prototype for the report's prototype list, the target of the links from every case: its
source training crop with the high-activation box and the receptive field, its self-activation, and where
that crop lies in its mammogram (thumbnail + crop box) when the crop and its image are known."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fpnpipe.classes import CLASSES
from fpnpipe.data.projection_record import ProjectionRecord
from fpnpipe.explain.browse import ImageThumbnails
from fpnpipe.explain.drawing import ActivationScale, box_is_empty
from fpnpipe.explain.panels import prototype_panels, save_png


def write_prototype_entries(folder: Path, record: ProjectionRecord, scale: ActivationScale,
                            images: ImageThumbnails, source_boxes: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Write prototypes/<j>.png for every prototype with a source patch and return the entries
    {prototype, class, level, similarity, source_image_id, duplicate_of, figure, source} (source: see
    ImageThumbnails.locate; None when the source crop's box or its image's thumbnail is unknown).
    source_boxes: crop id -> its crop box in source pixels, for the training crops."""
    entries = []
    digits = max(3, len(str(len(record.prototype_class))))
    for j in range(len(record.prototype_class)):
        source_id = str(record.source_image_id[j])
        figure = None
        if not box_is_empty(record.high_box[j]):
            figure = f"prototypes/{j:0{digits}d}.png"
            save_png(prototype_panels(record.source_image[j], record.self_activation[j], record.high_box[j],
                                      record.rf_box[j], scale), folder / figure)
        box = source_boxes.get(source_id)
        entries.append({
            "prototype": j,
            "class": CLASSES[int(record.prototype_class[j])],
            "level": int(record.prototype_level[j]),
            "similarity": round(float(record.similarity[j]), 6),
            "source_image_id": source_id or None,
            "duplicate_of": int(record.duplicate_of[j]) if int(record.duplicate_of[j]) >= 0 else None,
            "figure": figure,
            "source": images.locate(source_id, box) if source_id and box is not None else None,
        })
    return entries
