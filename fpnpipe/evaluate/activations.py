"""Activation precision and activation area of a prototype model on the test lesion crops (IAIA-BL's metric,
per FPN level), on the raw activation map over the whole crop, with the chance level beside it.

Every test lesion crop is paired with each prototype of its class. Activation area needs no annotation and is
measured on every pair; activation precision only on the pairs whose crop has a fine annotation (an ROI
outline's margin band or a given fine mask; box and circle annotations carry none). The raw maps of all pairs,
at their FPN level's native grid resolution, are kept (`ActivationMaps`) so that evaluate can save them and a
user can recompute both metrics without the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fpnpipe.classes import MARGIN_CLASSES
from fpnpipe.data.dataset import CropDataset
from fpnpipe.data.schema import CropSet
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

NO_ANNOTATION = (
    "activation precision was not measured: none of the {n} test lesion crops has a fine annotation (an ROI "
    "outline's margin band or a fine mask; box and circle annotations carry none); activation area needs none and "
    "is reported"
)
"""The reason metrics.json gives (under notes.activation_precision) and evaluate logs, when no pair is annotated."""


@dataclass(frozen=True)
class LevelMaps:
    """The own-class pairs of one FPN level: maps (M, h, w) float32, the raw patch-similarity map of each pair
    at the level's grid resolution; crop (M,) the pair's crop, an index into ActivationMaps' per-crop arrays;
    prototype (M,) the prototype's global index."""

    maps: np.ndarray
    crop: np.ndarray
    prototype: np.ndarray


@dataclass(frozen=True)
class ActivationMaps:
    """What the activation metrics are computed from. Per measured crop (n = every test lesion crop, in the
    order of the test set): test_row (n,) its row in the test set (= reports/predictions.csv), image_id (n,),
    label (n,), has_fine (n,) bool, fine (n, S, S) uint8 (zeros without annotation); per FPN level: LevelMaps.
    prototype_class, prototype_level: (m,) of every prototype of the model."""

    test_row: np.ndarray
    image_id: np.ndarray
    label: np.ndarray
    has_fine: np.ndarray
    fine: np.ndarray
    levels: dict[int, LevelMaps]
    prototype_class: np.ndarray
    prototype_level: np.ndarray

    @property
    def crop_size(self) -> int:
        return int(self.fine.shape[-1])

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat name -> array form, as saved to reports/activation_maps.npz (strings as fixed-width unicode,
        so that numpy reads the file without pickle)."""
        out = {
            "test_row": self.test_row.astype(np.int64),
            "image_id": np.array([str(v) for v in self.image_id], dtype=np.str_),
            "label": self.label.astype(np.int64),
            "has_fine": self.has_fine.astype(bool),
            "fine": self.fine.astype(np.uint8),
            "prototype_class": self.prototype_class.astype(np.int64),
            "prototype_level": self.prototype_level.astype(np.int64),
            "percentile": np.array(DEFAULT_PERCENTILE),
            "crop_size": np.array(self.crop_size, dtype=np.int64),
        }
        for level, part in sorted(self.levels.items()):
            out[f"level_{level}_maps"] = part.maps.astype(np.float32)
            out[f"level_{level}_crop"] = part.crop.astype(np.int64)
            out[f"level_{level}_prototype"] = part.prototype.astype(np.int64)
        return out


@torch.no_grad()
def collect_activation_maps(
    model: PrototypeNetwork, dataset: CropDataset, runtime: Runtime, batch_size: int = 64
) -> ActivationMaps:
    """Run `model` on every margin-class crop of `dataset` and keep, for each crop and each prototype of its
    class, the raw patch-similarity map (every cell, border included) at its level's grid resolution."""
    model.eval()
    crops = dataset.crops
    rows = np.nonzero(np.isin(crops.label, np.arange(len(MARGIN_CLASSES))))[0]
    proto_class = model.prototype_class.cpu().numpy()
    parts: dict[int, dict[str, list[np.ndarray]]] = {lv: {"maps": [], "crop": [], "prototype": []}
                                                     for lv in model.levels}
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        images = dataset.images[torch.from_numpy(idx)].to(runtime.device)
        labels = crops.label[idx]
        with runtime.autocast():
            activations = model(images).activations
        for level, maps in zip(model.levels, activations, strict=True):
            first = model.level_slice(level).start
            classes = proto_class[model.level_slice(level)]
            b, j = np.nonzero(labels[:, None] == classes[None, :])  # own-class pairs of this level
            if b.size == 0:
                continue
            parts[level]["maps"].append(maps[torch.from_numpy(b), torch.from_numpy(j)].float().cpu().numpy())
            parts[level]["crop"].append(start + b)
            parts[level]["prototype"].append(first + j)
    levels = {
        lv: LevelMaps(np.concatenate(p["maps"]).astype(np.float32), np.concatenate(p["crop"]).astype(np.int64),
                      np.concatenate(p["prototype"]).astype(np.int64))
        for lv, p in parts.items() if p["maps"]
    }
    return _with_crops(crops, rows, levels, proto_class, model.prototype_level.cpu().numpy())


def no_prototype_maps(crops: CropSet) -> ActivationMaps:
    """The ActivationMaps of a model without prototypes: the test lesion crops, and no map."""
    rows = np.nonzero(np.isin(crops.label, np.arange(len(MARGIN_CLASSES))))[0]
    return _with_crops(crops, rows, {}, np.zeros(0, np.int64), np.zeros(0, np.int64))


def _with_crops(crops: CropSet, rows: np.ndarray, levels: dict[int, LevelMaps], prototype_class: np.ndarray,
                prototype_level: np.ndarray) -> ActivationMaps:
    return ActivationMaps(
        test_row=rows.astype(np.int64), image_id=crops.image_id[rows], label=crops.label[rows].astype(np.int64),
        has_fine=crops.has_fine[rows].astype(bool), fine=crops.fine[rows].astype(np.uint8), levels=levels,
        prototype_class=prototype_class.astype(np.int64), prototype_level=prototype_level.astype(np.int64),
    )


@dataclass(frozen=True)
class PairValues:
    """One row per (test lesion crop, own-class prototype) pair: precision (M,) and chance (M,) = the share of
    the crop inside its fine annotation (what randomly placed activation would score), both NaN where the
    crop has no fine annotation; area (M,); the prototype's FPN level (M,); the crop's class (M,);
    annotated (M,) bool."""

    precision: np.ndarray
    chance: np.ndarray
    area: np.ndarray
    level: np.ndarray
    image_class: np.ndarray
    annotated: np.ndarray


def pair_values(maps: ActivationMaps, percentile: float = DEFAULT_PERCENTILE, chunk: int = 256) -> PairValues:
    """Each pair's map upsampled bilinearly to the crop (upsample_maps, float32), its pixels at or above the
    `percentile`-th percentile compared with the fine annotation, and its half-maximum area."""
    size = maps.crop_size
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("precision", "chance", "area", "level", "image_class",
                                                        "annotated")}
    share = relevant_share(maps.fine)
    for level, part in sorted(maps.levels.items()):
        for start in range(0, len(part.crop), chunk):
            crop = part.crop[start : start + chunk]
            up = upsample_maps(torch.from_numpy(part.maps[start : start + chunk]), size).numpy()
            annotated = maps.has_fine[crop]
            precision = np.full(crop.size, np.nan)
            if annotated.any():
                precision[annotated] = activation_precision_batch(up[annotated], maps.fine[crop[annotated]],
                                                                  percentile)
            out["precision"].append(precision)
            out["chance"].append(np.where(annotated, share[crop], np.nan))
            out["area"].append(activation_area_batch(up))
            out["level"].append(np.full(crop.size, level))
            out["image_class"].append(maps.label[crop])
            out["annotated"].append(annotated)
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    return PairValues(cat["precision"], cat["chance"], cat["area"], cat["level"].astype(int),
                      cat["image_class"].astype(int), cat["annotated"].astype(bool))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def activation_summary(pairs: PairValues, n_crops: int, n_annotated: int) -> dict[str, Any]:
    """{"activation_precision": {average, level_2..level_5, <margin class>..., chance: {average, level_l...},
    lift: {average, level_l...}, n_pairs, n_annotated}, "activation_area": {average, level_2..level_5,
    n_pairs, n_crops}, "notes": {"activation_precision": reason} (only when no crop is annotated)}, None where a
    group is empty. Precision is averaged over the annotated pairs, area over every pair. lift = mean
    precision / mean chance over the same pairs (1 = no better than chance)."""
    a = pairs.annotated
    by_level = summarise_by_level(pairs.precision[a], pairs.level[a])
    chance = summarise_by_level(pairs.chance[a], pairs.level[a])
    by_class = summarise_by_class(pairs.precision[a], pairs.image_class[a])
    precision: dict[str, Any] = {**by_level, **{c: by_class[c] for c in MARGIN_CLASSES}}
    precision["chance"] = chance
    precision["lift"] = {g: _ratio(by_level[g], chance[g]) for g in by_level}
    precision["n_pairs"] = int(a.sum())
    precision["n_annotated"] = int(n_annotated)
    area: dict[str, Any] = dict(summarise_by_level(pairs.area, pairs.level))
    area["n_pairs"] = int(pairs.area.size)
    area["n_crops"] = int(n_crops)
    out: dict[str, Any] = {"activation_precision": precision, "activation_area": area}
    if n_annotated == 0:
        out["notes"] = {"activation_precision": NO_ANNOTATION.format(n=n_crops)}
    return out


def activation_metrics(maps: ActivationMaps) -> dict[str, Any]:
    """activation_summary of the pairs in `maps`."""
    return activation_summary(pair_values(maps), len(maps.test_row), int(maps.has_fine.sum()))
