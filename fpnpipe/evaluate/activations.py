"""Activation precision and activation area of a prototype model on a set of crops (IAIA-BL's metric,
per FPN level): for every annotated lesion crop and every prototype of the crop's class, on the raw
activation map over the whole crop, with the chance level beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fpnpipe.classes import MARGIN_CLASSES
from fpnpipe.data.dataset import CropDataset, annotated_lesion_rows
from fpnpipe.metrics.activation import (
    DEFAULT_PERCENTILE,
    activation_area_batch,
    activation_precision_batch,
    relevant_share,
    summarise_by_class,
    summarise_by_level,
    upsample_maps,
)
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.runtime import Runtime


@dataclass(frozen=True)
class PairValues:
    """One row per (annotated image, own-class prototype) pair: precision (M,), chance (M,) = the share of
    the image's crop inside its fine annotation (what randomly placed activation would score), area (M,),
    the prototype's FPN level (M,) and the image's class (M,)."""

    precision: np.ndarray
    chance: np.ndarray
    area: np.ndarray
    level: np.ndarray
    image_class: np.ndarray


@torch.no_grad()
def activation_pairs(
    model: PrototypeNetwork, dataset: CropDataset, runtime: Runtime, batch_size: int = 64,
    percentile: float = DEFAULT_PERCENTILE,
) -> PairValues:
    """Evaluate every annotated margin-class crop of `dataset` against each prototype of its class: the raw
    patch-similarity map (every cell, border included) upsampled to the crop size, its pixels at or above
    the `percentile`-th percentile compared with the fine annotation (the margin)."""
    model.eval()
    crops = dataset.crops
    rows = annotated_lesion_rows(crops)
    size = crops.crop_size
    proto_class = model.prototype_class.cpu().numpy()
    out: dict[str, list[np.ndarray]] = {"precision": [], "chance": [], "area": [], "level": [], "image_class": []}
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        images = dataset.images[torch.from_numpy(idx)].to(runtime.device)
        labels = crops.label[idx]
        relevant = crops.fine[idx].astype(bool)
        share = relevant_share(relevant)
        with runtime.autocast():
            activations = model(images).activations
        for level, maps in zip(model.levels, activations, strict=True):
            if maps.shape[1] == 0:
                continue
            classes = proto_class[model.level_slice(level)]
            b, j = np.nonzero(labels[:, None] == classes[None, :])  # own-class pairs of this level
            if b.size == 0:
                continue
            up = upsample_maps(maps[torch.from_numpy(b), torch.from_numpy(j)].float(), size).cpu().numpy()
            out["precision"].append(activation_precision_batch(up, relevant[b], percentile))
            out["chance"].append(share[b])
            out["area"].append(activation_area_batch(up))
            out["level"].append(np.full(b.size, level))
            out["image_class"].append(labels[b])
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    return PairValues(cat["precision"], cat["chance"], cat["area"], cat["level"].astype(int),
                      cat["image_class"].astype(int))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def activation_summary(pairs: PairValues) -> dict[str, dict[str, Any]]:
    """{"activation_precision": {average, level_2..level_5, <margin class>..., chance: {average, level_l...},
    lift: {average, level_l...}, n_pairs}, "activation_area": {average, level_2..level_5}}, None where a
    group is empty. lift = mean precision / mean chance over the same pairs (1 = no better than chance)."""
    by_level = summarise_by_level(pairs.precision, pairs.level)
    chance = summarise_by_level(pairs.chance, pairs.level)
    by_class = summarise_by_class(pairs.precision, pairs.image_class)
    precision: dict[str, Any] = {**by_level, **{c: by_class[c] for c in MARGIN_CLASSES}}
    precision["chance"] = chance
    precision["lift"] = {g: _ratio(by_level[g], chance[g]) for g in by_level}
    precision["n_pairs"] = int(pairs.precision.size)
    return {"activation_precision": precision, "activation_area": summarise_by_level(pairs.area, pairs.level)}
