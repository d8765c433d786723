"""Regression test of the interpretability fix (issue 9): with the default objective, a short training run on
tiny phantoms lowers the fine-annotation term and puts the prototypes' activation on the margin band, clearly
better than the same run given shuffled annotations (the same bands, on other images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from fpnpipe.classes import CLASSES
from fpnpipe.config import LossParams, ModelParams, PrototypeParams
from fpnpipe.data.crops import margin_band
from fpnpipe.losses import PrototypeLoss
from fpnpipe.metrics.activation import activation_precision_batch, upsample_maps
from fpnpipe.model.build import build_network
from fpnpipe.model.network import PrototypeNetwork

S = 32
STEPS = 80


def _phantoms(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """images (N, 1, S, S) in [0, 1], fine (N, S, S) uint8 margin bands (2 px either side), labels (N,).

    A disc of radius 4-6 px anywhere in the crop's central half on smooth noise: sharp (circumscribed),
    blurred (indistinct) or with seven radial spikes (spiculated); negatives are noise alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S] + 0.5
    images, fine, labels = [], [], []
    for label in range(len(CLASSES)):
        for _ in range(per_class):
            noise = ndimage.gaussian_filter(rng.standard_normal((S, S)), 2.0)
            image = 0.35 + 0.08 * noise / noise.std()
            band = np.zeros((S, S), bool)
            if label < 3:
                cx, cy, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(4, 6)
                dist = np.hypot(xx - cx, yy - cy)
                roi = dist <= r
                if label == 1:
                    body = ndimage.gaussian_filter(roi.astype(float), 1.5)
                else:
                    if label == 2:
                        angle = np.arctan2(yy - cy, xx - cx)
                        roi = roi | ((np.cos(7 * angle + rng.uniform(0, 2 * np.pi)) > 0.7) & (dist <= 1.7 * r))
                    body = roi.astype(float)
                image = image + 0.35 * body
                band = margin_band(roi, 2)
            images.append(np.clip(image, 0, 1))
            fine.append(band)
            labels.append(label)
    return (torch.tensor(np.array(images), dtype=torch.float32)[:, None],
            torch.tensor(np.array(fine), dtype=torch.uint8), torch.tensor(labels))


def _train(images: torch.Tensor, fine: torch.Tensor, labels: torch.Tensor, prototype_changes: dict | None = None,
           loss: LossParams | None = None) -> tuple[PrototypeNetwork, list[float]]:
    """STEPS Adam steps of the default objective (LossParams() unless `loss`) on a tiny network with the default
    prototype layer (latent centring, no border; `prototype_changes` overrides) at levels 2 and 3; returns the
    network and each step's fine term."""
    per_class = {c: (2, 1, 0, 0) for c in CLASSES}
    prototypes = PrototypeParams.model_validate_json(json.dumps({"per_class": per_class, "top_k": [2, 1, 1, 1],
                                                                 **(prototype_changes or {})}))
    torch.manual_seed(0)
    model = build_network(ModelParams(fpn_channels=16), prototypes)
    assert isinstance(model, PrototypeNetwork)
    loss_fn = PrototypeLoss.for_model(loss or LossParams(), model)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    annotated = torch.ones(len(labels), dtype=torch.bool)
    fine_terms: list[float] = []
    for _ in range(STEPS):
        idx = torch.randperm(len(labels), generator=order)[:16]
        terms = loss_fn(model(images[idx]), labels[idx], fine[idx], annotated[idx])
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        fine_terms.append(terms.fine.item())
    return model, fine_terms


@torch.no_grad()
def _activation_precision(model: PrototypeNetwork, images: torch.Tensor, fine: torch.Tensor,
                          labels: torch.Tensor) -> float:
    """Mean activation precision over (lesion image, own-class prototype) pairs, raw maps over the whole crop."""
    model.eval()
    values = []
    for level, maps in zip(model.levels, model(images).activations, strict=True):
        classes = model.prototype_class[model.level_slice(level)]
        b, j = torch.nonzero((labels[:, None] == classes[None, :]) & (labels < 3)[:, None], as_tuple=True)
        if len(b):
            values.append(activation_precision_batch(upsample_maps(maps[b, j], S).numpy(), fine[b].numpy()))
    return float(np.concatenate(values).mean())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_default_objective_puts_activation_on_the_margin_not_on_any_band():
    images, fine, labels = _phantoms(12, seed=0)
    test_images, test_fine, test_labels = _phantoms(6, seed=100)
    lesions = torch.nonzero(labels < 3).flatten()
    shuffled = fine.clone()
    shuffled[lesions] = fine[lesions.roll(5)]  # every lesion image gets another lesion's band

    model, fine_terms = _train(images, fine, labels)
    control, _ = _train(images, shuffled, labels)

    assert np.mean(fine_terms[-10:]) < np.mean(fine_terms[:10]) - 0.02  # the fine term is minimised
    chance = float(test_fine[test_labels < 3].float().mean())  # 0.14
    precision = _activation_precision(model, test_images, test_fine, test_labels)
    assert precision > 3 * chance  # measured 0.59
    assert precision > _activation_precision(control, test_images, test_fine, test_labels) + 0.1  # 0.42
