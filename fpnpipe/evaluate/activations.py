"""Activation precision and activation area of a prototype model on a set of crops (IAIA-BL's metric,
per FPN level): for every annotated lesion crop and every prototype of the crop's class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fpnpipe.classes import MARGIN_CLASSES
from fpnpipe.evaluate.interpretability import (
    DEFAULT_PERCENTILE,
    activation_area_batch,
    activation_precision_batch,
    summarise_by_level_and_class,
)
from fpnpipe.model import PrototypeNetwork
from fpnpipe.train.data import CropDataset
from fpnpipe.train.devices import Runtime


@dataclass(frozen=True)
class PairValues:
    """One row per (annotated image, own-class prototype) pair: precision (M,), area (M,), the
    prototype's FPN level (M,) and the image's class (M,)."""

    precision: np.ndarray
    area: np.ndarray
    level: np.ndarray
    image_class: np.ndarray


@torch.no_grad()
def activation_pairs(
    model: PrototypeNetwork, dataset: CropDataset, runtime: Runtime, batch_size: int = 64,
    percentile: float = DEFAULT_PERCENTILE,
) -> PairValues:
    """Evaluate every annotated margin-class crop of `dataset` against each prototype of its class: the
    patch-similarity map upsampled (bilinear, align_corners=False) to the crop size, its pixels at or above
    the `percentile`-th percentile compared with the fine annotation (the margin)."""
    model.eval()
    crops = dataset.crops
    margin = np.isin(crops.label, np.arange(len(MARGIN_CLASSES)))
    rows = np.nonzero(crops.has_fine & margin)[0]
    size = crops.crop_size
    proto_class = model.prototype_class.cpu().numpy()
    out: dict[str, list[np.ndarray]] = {"precision": [], "area": [], "level": [], "image_class": []}
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        images = dataset.images[torch.from_numpy(idx)].to(runtime.device)
        labels = crops.label[idx]
        relevant = crops.fine[idx].astype(bool)
        with runtime.autocast():
            activations = model(images).activations
        for level, maps in zip(model.levels, activations):
            if maps.shape[1] == 0:
                continue
            classes = proto_class[model.level_slice(level)]
            b, j = np.nonzero(labels[:, None] == classes[None, :])  # own-class pairs of this level
            if b.size == 0:
                continue
            picked = maps[torch.from_numpy(b), torch.from_numpy(j)].float()[:, None]
            up = F.interpolate(picked, size=(size, size), mode="bilinear", align_corners=False)[:, 0].cpu().numpy()
            out["precision"].append(activation_precision_batch(up, relevant[b], percentile))
            out["area"].append(activation_area_batch(up))
            out["level"].append(np.full(b.size, level))
            out["image_class"].append(labels[b])
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    return PairValues(cat["precision"], cat["area"], cat["level"].astype(int), cat["image_class"].astype(int))


def activation_summary(pairs: PairValues) -> dict[str, dict[str, float | None]]:
    """{"activation_precision": {average, level_2..level_5, <margin class>...},
    "activation_area": {average, level_2..level_5}} with None where a group is empty."""
    precision = summarise_by_level_and_class(pairs.precision, pairs.level, pairs.image_class)
    by_class = precision.pop("by_class")
    precision.update({c: by_class[c] for c in MARGIN_CLASSES})
    area = summarise_by_level_and_class(pairs.area, pairs.level, pairs.image_class)
    area.pop("by_class")
    return {"activation_precision": precision, "activation_area": area}
