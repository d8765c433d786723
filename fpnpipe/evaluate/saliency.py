"""Saliency baselines of the paper's Figure 4: GradCAM (Selvaraju et al. 2017) and GradCAM++ (Chattopadhay et
al. 2018) maps of a model for its predicted class, at the last conv layer of its VGG-16 backbone, computed by
pytorch-grad-cam (`grad-cam` on PyPI), and their activation precision, chance level and activation area on the
annotated test lesions, by the same functions as the prototype maps' (fpnpipe.metrics.activation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from fpnpipe.classes import MARGIN_CLASSES
from fpnpipe.data.dataset import annotated_lesion_rows
from fpnpipe.data.saliency_record import SaliencyRecord
from fpnpipe.data.schema import CropSet
from fpnpipe.metrics.activation import (
    DEFAULT_PERCENTILE,
    activation_area_batch,
    activation_precision_batch,
    relevant_share,
    summarise_by_class,
)
from fpnpipe.model.base import ClassifierNet
from fpnpipe.runtime import Runtime

METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam_pp": GradCAMPlusPlus}
"""Saliency method by its key in reports (table1.json: <model>.gradcam..., <model>.gradcam_pp...) and in
fpnpipe.data.saliency_record.METHOD_LABELS."""


class _Logits(nn.Module):
    """The model as pytorch-grad-cam expects it: images (B, 1, S, S) -> float32 logits (B, C)."""

    def __init__(self, model: ClassifierNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x).logits.float()


def last_conv_layer(model: ClassifierNet) -> nn.Module:
    """The module whose output is the rectified feature map of the backbone's last conv layer: the c5 tap
    (conv 5-3's ReLU), the map the black box pools and the single-scale prototype models read."""
    return model.backbone.features[model.backbone.tap_index[5]]


@contextmanager
def _gradients_on(model: nn.Module) -> Iterator[None]:
    """Every parameter requires grad (a frozen backbone would give no gradient at the target layer), as before
    afterwards."""
    before = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(model.parameters(), before, strict=True):
            p.requires_grad_(flag)


def saliency_maps(model: ClassifierNet, images: Tensor, method: str, classes: np.ndarray) -> np.ndarray:
    """(B, S, S) float32 maps of `method` (a key of METHODS) for `classes` (B,) int on images (B, 1, S, S).

    pytorch-grad-cam computes the map at the last conv layer (channel weights from the gradients of the
    class's logit, ReLU of the weighted sum), resizes it bilinearly to the crop and scales it to [0, 1] by its
    own minimum and maximum (a map without positive evidence is all 0). Float32, no autocast."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; known: {', '.join(METHODS)}")
    wrapped = _Logits(model)
    cam = METHODS[method](model=wrapped, target_layers=[last_conv_layer(model)])
    try:
        with _gradients_on(model):
            targets = [ClassifierOutputTarget(int(c)) for c in classes]
            out = cam(input_tensor=images.float(), targets=targets)
    finally:
        cam.activations_and_grads.release()
    return np.asarray(out, dtype=np.float32)


@torch.no_grad()
def _predicted(model: ClassifierNet, images: Tensor) -> np.ndarray:
    model.eval()
    return model(images).logits.float().argmax(dim=1).cpu().numpy().astype(np.int64)


def saliency_record(model: ClassifierNet, crops: CropSet, runtime: Runtime, batch_size: int = 32) -> SaliencyRecord:
    """Every method's map of `model` for its predicted class (arg-max over all classes) on every annotated
    margin-class crop of `crops` (fpnpipe.data.dataset.annotated_lesion_rows), in row order."""
    model.eval()
    rows = annotated_lesion_rows(crops)
    size = crops.crop_size
    maps = {m: np.zeros((rows.size, size, size), np.float32) for m in METHODS}
    predicted = np.zeros(rows.size, np.int64)
    for start in range(0, rows.size, batch_size):
        idx = rows[start : start + batch_size]
        images = torch.from_numpy(np.ascontiguousarray(crops.images[idx], np.float32))[:, None].to(runtime.device)
        predicted[start : start + idx.size] = _predicted(model, images)
        for method in METHODS:
            maps[method][start : start + idx.size] = saliency_maps(model, images, method,
                                                                   predicted[start : start + idx.size])
    return SaliencyRecord(image_id=crops.image_id[rows], patient_id=crops.patient_id[rows],
                          label=crops.label[rows].astype(np.int64), predicted=predicted,
                          fine=crops.fine[rows].astype(np.uint8), maps=maps)


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def saliency_summary(record: SaliencyRecord, percentile: float = DEFAULT_PERCENTILE) -> dict[str, Any]:
    """Per method, on its maps of the record: {"activation_precision": {average, <margin class>..., chance:
    {average}, lift: {average}, n_maps}, "activation_area": {average}}: IAIA-BL's activation precision (the
    share of each map's pixels at or above its `percentile`-th percentile inside the fine annotation), the
    annotation's share of the crop as its chance level, and the half-maximum area, as for the prototype maps
    (one map per crop here, one per own-class prototype there). None where there is no map."""
    relevant = record.fine.astype(bool)
    chance = _mean(relevant_share(relevant)) if len(relevant) else None
    out: dict[str, Any] = {}
    for method, maps in record.maps.items():
        if len(maps):
            precision = activation_precision_batch(maps, relevant, percentile)
            area = activation_area_batch(maps)
        else:
            precision = area = np.zeros(0)
        by_class = summarise_by_class(precision, np.asarray(record.label))
        average = _mean(precision)
        summary: dict[str, Any] = {"average": average, **{c: by_class[c] for c in MARGIN_CLASSES}}
        summary["chance"] = {"average": chance}
        summary["lift"] = {"average": average / chance if average is not None and chance else None}
        summary["n_maps"] = int(precision.size)
        out[method] = {"activation_precision": summary, "activation_area": {"average": _mean(area)}}
    return out
