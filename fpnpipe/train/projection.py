"""Stage B, prototype projection ("push", ProtoPNet / IAIA-BL): each prototype is replaced by the most
similar latent patch among training images of its own class at its own FPN level.

One batched pass over the training split keeps a running best per prototype; per batch and level, all
prototypes are handled by one masked max over (images x positions): no Python loop over prototypes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from fpnpipe.classes import CLASSES
from fpnpipe.data.dataset import Batch, CropDataset, make_loader
from fpnpipe.data.projection_record import ProjectionRecord, empty_record
from fpnpipe.metrics.activation import high_activation_box_batch, upsample_maps
from fpnpipe.model.base import ClassifierNet
from fpnpipe.model.build import prototype_network
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NearestPatches:
    """Per prototype j (m rows): best similarity (m,), source row in the dataset (m,) (-1 if no training
    image of its class), grid cell (m, 2) [row, col] at its level, and the latent vector (m, d)."""

    similarity: torch.Tensor
    source: torch.Tensor
    grid: torch.Tensor
    vectors: torch.Tensor


@torch.no_grad()
def find_nearest_patches(model: PrototypeNetwork, loader: DataLoader, runtime: Runtime) -> NearestPatches:
    """The most similar own-class training patch of every prototype, in one pass over `loader`
    (unaugmented, any order: ties keep the first patch met, so a fixed order gives a fixed result)."""
    model.eval()
    m, device = model.num_prototypes, runtime.device
    proto_class = model.prototype_class.to(device)
    best = torch.full((m,), float("-inf"), device=device)
    source = torch.full((m,), -1, dtype=torch.long, device=device)
    grid = torch.zeros((m, 2), dtype=torch.long, device=device)
    vectors = model.prototype_layer.prototype_vectors.detach().clone().float()
    for batch in loader:
        b: Batch = batch.to(device, runtime.channels_last)
        with runtime.autocast():
            features = model.forward_features(b.images)
        for level, z in zip(model.levels, features, strict=True):
            rows = model.level_slice(level)
            prototypes = model.level_prototypes(level)
            if prototypes.shape[0] == 0:
                continue
            z = z.float()
            maps = model.prototype_layer.similarity_maps(z, prototypes.float())  # (B, m_l, H, W)
            maps = model.prototype_layer.fill_border(maps, float("-inf"))  # edge cells never win
            own = b.labels[:, None] == proto_class[rows][None, :]  # (B, m_l)
            maps = maps.masked_fill(~own[:, :, None, None], float("-inf"))
            n, m_l, h, w = maps.shape
            value, flat = maps.permute(1, 0, 2, 3).reshape(m_l, n * h * w).max(dim=1)
            better = value > best[rows]
            if not better.any():
                continue
            image, pos = flat // (h * w), flat % (h * w)
            row, col = pos // w, pos % w
            found = z[image, :, row, col]  # (m_l, d)
            idx = torch.arange(rows.start, rows.stop, device=device)[better]
            best[idx] = value[better]
            source[idx] = b.index.to(device)[image[better]]
            grid[idx] = torch.stack([row, col], dim=1)[better]
            vectors[idx] = found[better]
    return NearestPatches(best.cpu(), source.cpu(), grid.cpu(), vectors.cpu())


def project(
    model: PrototypeNetwork, push_set: CropDataset, batch_size: int, runtime: Runtime, num_workers: int = 0
) -> NearestPatches:
    """Stage B on `push_set` (training crops, unaugmented, in order): find and apply every prototype's
    nearest own-class patch."""
    loader = make_loader(push_set, batch_size, shuffle=False, num_workers=num_workers, pin_memory=runtime.pin_memory)
    nearest = find_nearest_patches(model, loader, runtime)
    apply_projection(model, nearest)
    return nearest


def apply_projection(model: PrototypeNetwork, nearest: NearestPatches) -> None:
    """Overwrite every prototype that found a patch with that patch's latent vector."""
    found = torch.nonzero(nearest.source >= 0).flatten()
    missing = [int(j) for j in torch.nonzero(nearest.source < 0).flatten()]
    if missing:
        log.warning("prototypes %s found no training image of their class and keep their vectors", missing)
    model.prototype_layer.set_prototypes(found, nearest.vectors[found])


def _duplicates(nearest: NearestPatches, proto_class: np.ndarray, proto_level: np.ndarray) -> np.ndarray:
    seen: dict[tuple[int, int, int, int, int], int] = {}
    dup = np.full(len(proto_class), -1, dtype=np.int64)
    for j in range(len(proto_class)):
        if int(nearest.source[j]) < 0:
            continue
        row, col = (int(v) for v in nearest.grid[j])
        key = (int(proto_class[j]), int(proto_level[j]), int(nearest.source[j]), row, col)
        if key in seen:
            dup[j] = seen[key]
        else:
            seen[key] = j
    return dup


@torch.no_grad()
def projection_record(
    model: PrototypeNetwork, dataset: CropDataset, nearest: NearestPatches, runtime: Runtime, batch_size: int = 64
) -> ProjectionRecord:
    """Describe the (already applied) projection: run the projected model on each source crop once."""
    model.eval()
    m, size = model.num_prototypes, dataset.crops.crop_size
    proto_class = model.prototype_class.cpu().numpy()
    proto_level = model.prototype_level.cpu().numpy()
    src = nearest.source.numpy()
    activation = np.zeros((m, size, size), np.float32)
    for start in range(0, m, batch_size):
        js = np.arange(start, min(m, start + batch_size))
        js = js[src[js] >= 0]
        if js.size == 0:
            continue
        images = dataset.images[torch.from_numpy(src[js])].to(runtime.device)
        with runtime.autocast():
            out = model(images)
        for level, maps in zip(model.levels, out.activations, strict=True):
            rows = model.level_slice(level)
            sel = np.nonzero((js >= rows.start) & (js < rows.stop))[0]
            if sel.size == 0:
                continue
            picked = maps[torch.from_numpy(sel), torch.from_numpy(js[sel] - rows.start)].float()  # (n, h, w)
            up = upsample_maps(picked, size)
            activation[js[sel]] = up.cpu().numpy()
    high = high_activation_box_batch(activation)
    rf = np.zeros((m, 4), np.int64)
    for j in range(m):
        if src[j] >= 0:
            rf[j] = model.receptive_field(int(proto_level[j]), int(nearest.grid[j, 0]), int(nearest.grid[j, 1]), size)
    dup = _duplicates(nearest, proto_class, proto_level)
    for j in np.nonzero(dup >= 0)[0].tolist():
        log.warning("prototypes %d and %d (%s, level %d) were projected onto the same patch", dup[j], j,
                    CLASSES[proto_class[j]], proto_level[j])
    has = src >= 0
    crops = dataset.crops
    empty = np.zeros((size, size), np.float32)
    return ProjectionRecord(
        prototype_class=proto_class.astype(np.int64),
        prototype_level=proto_level.astype(np.int64),
        source_image_id=np.array([crops.image_id[s] if s >= 0 else "" for s in src], dtype=object),
        source_patient_id=np.array([crops.patient_id[s] if s >= 0 else "" for s in src], dtype=object),
        grid=nearest.grid.numpy().astype(np.int64),
        similarity=nearest.similarity.numpy().astype(np.float32),
        rf_box=rf,
        high_box=np.where(has[:, None], np.asarray(high, np.int64), 0),
        self_activation=activation,
        source_image=np.stack([crops.images[s] if s >= 0 else empty for s in src]).astype(np.float32),
        duplicate_of=dup,
    )


def describe_projection(
    model: ClassifierNet, dataset: CropDataset, nearest: NearestPatches | None, runtime: Runtime, batch_size: int = 64
) -> ProjectionRecord:
    """The projection record of `model` (projection_record), or the empty record of a model without
    prototypes."""
    net = prototype_network(model)
    if net is None or nearest is None:
        return empty_record(dataset.crops.crop_size)
    return projection_record(net, dataset, nearest, runtime, batch_size)
