"""Stage B, prototype projection ("push", ProtoPNet / IAIA-BL): each prototype is replaced by the most
similar latent patch among training images of its own class at its own FPN level.

One batched pass over the training split keeps, per prototype, its K best candidate patches (K = the size
of its class-and-level group); per batch and level, all prototypes are handled by masked maxima over
(images x positions): no Python loop over prototypes. Candidates are ordered by similarity, then by the
lowest dataset row, then by the lowest grid position, so ties never depend on batching or on the number of
processes: with several, each process searches its share of the rows and the candidates are gathered and
merged in that same order.

Duplicate-free projection (`distinct`): prototypes of one class and level are then given distinct patches
by a greedy assignment in decreasing similarity -- the most similar (prototype, candidate) pair of the
group first, then the best pair among the prototypes left and the candidates not taken, and so on (ties:
the lower prototype index) -- so the strongest matches are kept and the result does not depend on how the
prototypes are numbered. "image": no two prototypes of a group take patches of the same training crop;
"cell": not the same grid cell of the same crop (neighbouring cells of one crop may still be taken: their
receptive fields overlap mostly); "none": each takes its own best patch, duplicates and all (the paper's
push). A prototype whose best patch another took is `displaced`. K candidates always suffice: when a
prototype is served, fewer than K of its candidates are taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from fpnpipe.classes import CLASSES
from fpnpipe.data.dataset import Batch, CropDataset, batches_in_order, shared_rows
from fpnpipe.data.projection_record import ProjectionRecord, empty_record
from fpnpipe.metrics.activation import high_activation_box_batch, upsample_maps
from fpnpipe.model.base import ClassifierNet
from fpnpipe.model.build import prototype_network
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.runtime import Runtime
from fpnpipe.train.progress import StageProgress

log = logging.getLogger(__name__)

DISTINCT = ("image", "cell", "none")
"""What prototypes of one class and level must not share: a source crop, a grid cell of one, or nothing."""


@dataclass(frozen=True)
class NearestPatches:
    """Per prototype j (m rows): best similarity (m,), source row in the dataset (m,) (-1 if no training
    image of its class), grid cell (m, 2) [row, col] at its level, the latent vector (m, d), and whether it
    was displaced (m,) bool: its own best patch went to another prototype of its group."""

    similarity: torch.Tensor
    source: torch.Tensor
    grid: torch.Tensor
    vectors: torch.Tensor
    displaced: torch.Tensor


_FIELDS = ("value", "index", "row", "col", "vector")


@dataclass
class _Candidates:
    """K candidate patches per prototype, best first: similarity (m, K) (-inf = none), dataset row (m, K),
    grid cell row and column (m, K) at the prototype's level, latent vector (m, K, d)."""

    value: torch.Tensor
    index: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    vector: torch.Tensor

    @staticmethod
    def empty(m: int, k: int, d: int, device: torch.device) -> _Candidates:
        zeros = torch.zeros((m, k), dtype=torch.long, device=device)
        return _Candidates(torch.full((m, k), float("-inf"), device=device),
                           torch.full((m, k), -1, dtype=torch.long, device=device), zeros, zeros.clone(),
                           torch.zeros((m, k, d), device=device))

    def keep_best(self, k: int) -> _Candidates:
        """The k best of each row, ordered by (similarity desc, dataset row asc, grid row asc, grid col asc)."""
        perm = torch.argsort(self.col, dim=1, stable=True)
        for key in (self.row, self.index, -self.value):
            perm = perm.gather(1, torch.argsort(key.gather(1, perm), dim=1, stable=True))
        perm = perm[:, :k]
        d = self.vector.shape[-1]
        return _Candidates(self.value.gather(1, perm), self.index.gather(1, perm), self.row.gather(1, perm),
                           self.col.gather(1, perm), self.vector.gather(1, perm[:, :, None].expand(-1, -1, d)))

    def rows(self, rows: slice) -> _Candidates:
        return _Candidates(*(getattr(self, f)[rows] for f in _FIELDS))

    def put(self, rows: slice, other: _Candidates) -> None:
        for f in _FIELDS:
            getattr(self, f)[rows] = getattr(other, f)

    @staticmethod
    def join(parts: list[_Candidates]) -> _Candidates:
        return _Candidates(*(torch.cat([getattr(p, f) for p in parts], dim=1) for f in _FIELDS))


def _top_k_first(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L) -> the k largest of each row and their column, best first; among equal values the lowest
    column first (torch.max returns the first maximal index). Consumes `values`."""
    found_v, found_i = [], []
    for _ in range(k):
        v, i = values.max(dim=1)
        found_v.append(v)
        found_i.append(i)
        values.scatter_(1, i[:, None], float("-inf"))
    return torch.stack(found_v, dim=1), torch.stack(found_i, dim=1)


def _group_size(model: PrototypeNetwork) -> int:
    key = model.prototype_level.cpu() * len(CLASSES) + model.prototype_class.cpu()
    return int(torch.bincount(key).max())


@torch.no_grad()
def find_nearest_patches(
    model: PrototypeNetwork, batches, runtime: Runtime, distinct: str = "image", progress: StageProgress | None = None,
) -> NearestPatches:
    """The projection of every prototype (see the module docstring) from one pass over `batches` (an
    iterable of unaugmented Batch whose rows increase, e.g. batches_in_order or a DataLoader without
    shuffling). With several processes (runtime.dist), each passes its own share of the rows and every
    process gets the same result."""
    if distinct not in DISTINCT:
        raise ValueError(f"distinct must be one of {DISTINCT}, got {distinct!r}")
    model.eval()
    m, device = model.num_prototypes, runtime.device
    k = 1 if distinct == "none" else _group_size(model)
    proto_class = model.prototype_class.to(device)
    found = _Candidates.empty(m, k, model.prototype_layer.dim, device)
    steps = len(batches) if hasattr(batches, "__len__") else 0
    context = progress.phase("projection", steps) if progress is not None else None
    bar = context.__enter__() if context is not None else None
    try:
        for batch in batches:
            b: Batch = batch.to(device, runtime.channels_last)
            with runtime.autocast():
                features = model.forward_features(b.images)
            for level, z in zip(model.levels, features, strict=True):
                rows = model.level_slice(level)
                if rows.stop == rows.start:
                    continue
                found = _merge_level(model, level, z, b, proto_class[rows], rows, found, k, distinct)
            if bar is not None:
                bar.advance(work=len(b.labels))
    finally:
        if context is not None:
            context.__exit__(None, None, None)
    if runtime.dist.active:
        found = _gather(found, runtime, k)
    return _assign(model, found, distinct)


def _merge_level(model: PrototypeNetwork, level: int, z: torch.Tensor, b: Batch, classes: torch.Tensor, rows: slice,
                 found: _Candidates, k: int, distinct: str) -> _Candidates:
    z = model.prototype_layer.latent(z.float())  # what the prototypes are compared with (centred or not)
    maps = model.prototype_layer.similarity_maps(z, model.level_prototypes(level).float())  # (B, m_l, H, W)
    maps = model.prototype_layer.fill_border(maps, float("-inf"))  # edge cells never win
    own = b.labels[:, None] == classes[None, :]  # (B, m_l)
    maps = maps.masked_fill(~own[:, :, None, None], float("-inf"))
    n, m_l, h, w = maps.shape
    take = min(k, n if distinct == "image" else n * h * w)
    if distinct == "image":  # each image's best cell, then the best images
        per_image, cell = maps.flatten(2).max(dim=2)  # (B, m_l)
        value, image = _top_k_first(per_image.T.contiguous(), take)
        pos = cell.T.gather(1, image)
    else:
        value, flat = _top_k_first(maps.permute(1, 0, 2, 3).reshape(m_l, n * h * w), take)
        image, pos = flat // (h * w), flat % (h * w)
    vector = z[image, :, pos // w, pos % w].float()  # (m_l, take, d)
    index = b.index.to(value.device)[image]
    index = torch.where(torch.isfinite(value), index, torch.full_like(index, -1))
    new = _Candidates(value, index, pos // w, pos % w, vector)
    found.put(rows, _Candidates.join([found.rows(rows), new]).keep_best(k))
    return found


def _gather(found: _Candidates, runtime: Runtime, k: int) -> _Candidates:
    """Every process's candidates merged into the best K, identically on every process."""
    dist = runtime.dist
    m = found.value.shape[0]

    def spread(t: torch.Tensor) -> torch.Tensor:  # (world * m, K, ...) -> (m, world * K, ...)
        g = dist.all_gather(t).reshape(dist.world, m, *t.shape[1:])
        return g.transpose(0, 1).reshape(m, dist.world * t.shape[1], *t.shape[2:])

    return _Candidates(*(spread(getattr(found, f)) for f in _FIELDS)).keep_best(k)


def _assign(model: PrototypeNetwork, found: _Candidates, distinct: str) -> NearestPatches:
    value, index, grid_row, grid_col = found.value.cpu(), found.index.cpu(), found.row.cpu(), found.col.cpu()
    classes, levels = model.prototype_class.cpu().tolist(), model.prototype_level.cpu().tolist()
    m = len(classes)
    slot = [-1] * m
    displaced = torch.zeros(m, dtype=torch.bool)
    groups: dict[tuple[int, int], list[int]] = {}
    for j in range(m):
        groups.setdefault((classes[j], levels[j]), []).append(j)

    def key(j: int, s: int) -> tuple[int, ...]:
        if distinct == "image":
            return (int(index[j, s]),)
        return (int(index[j, s]), int(grid_row[j, s]), int(grid_col[j, s]))

    valid = [[s for s in range(value.shape[1]) if int(index[j, s]) >= 0] for j in range(m)]
    for members in groups.values():
        taken: set[tuple[int, ...]] = set()
        left = list(members)
        while left:
            best: tuple[float, int, int] | None = None
            for j in left:
                free = next((s for s in valid[j] if distinct == "none" or key(j, s) not in taken), None)
                if free is not None and (best is None or float(value[j, free]) > best[0]):
                    best = (float(value[j, free]), j, free)
            if best is None:
                break
            _, j, s = best
            slot[j], displaced[j] = s, s != valid[j][0]
            taken.add(key(j, s))
            left.remove(j)
        for j in left:  # no distinct patch left for it: keep its own best, a duplicate
            if valid[j]:
                slot[j] = valid[j][0]
                log.warning("prototype %d (%s, level %d): every training crop of its class is taken by another "
                            "prototype of its group; it keeps its best patch, a duplicate", j, CLASSES[classes[j]],
                            levels[j])
    chosen = torch.tensor([max(s, 0) for s in slot])
    rows = torch.arange(m)
    has = torch.tensor([s >= 0 for s in slot])
    grid = torch.stack([grid_row[rows, chosen], grid_col[rows, chosen]], dim=1)
    return NearestPatches(
        similarity=torch.where(has, value[rows, chosen], torch.full((m,), float("-inf"))),
        source=torch.where(has, index[rows, chosen], torch.full((m,), -1, dtype=torch.long)),
        grid=torch.where(has[:, None], grid, torch.zeros_like(grid)),
        vectors=torch.where(has[:, None], found.vector.cpu()[rows, chosen],
                            model.prototype_layer.prototype_vectors.detach().float().cpu()),
        displaced=displaced,
    )


def project(
    model: PrototypeNetwork, push_set: CropDataset, batch_size: int, runtime: Runtime, distinct: str = "image",
    progress: StageProgress | None = None,
) -> NearestPatches:
    """Stage B on `push_set` (training crops, unaugmented): find and apply every prototype's patch. With
    several processes each searches its share of the batches (shared_rows)."""
    rows = shared_rows(len(push_set), batch_size, runtime.dist)
    batches = _Sized(batches_in_order(push_set, rows, batch_size, runtime.device, runtime.channels_last),
                     -(-len(rows) // batch_size))
    nearest = find_nearest_patches(model, batches, runtime, distinct, progress)
    apply_projection(model, nearest)
    moved = int(nearest.displaced.sum())
    if runtime.dist.main and moved >= max(2, model.num_prototypes // 4):
        log.warning("projection: %d of %d prototypes were displaced: their own best patch was already another "
                    "prototype's of their class and level, so plain projection would have stacked them on the same "
                    "crops (prototypes far from every patch of a latent space of few directions; README, "
                    "duplicate-free projection)", moved, model.num_prototypes)
    return nearest


class _Sized:
    """An iterable with a known length (for the progress bar)."""

    def __init__(self, items, length: int) -> None:
        self._items, self._length = items, length

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return self._length


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
        displaced=nearest.displaced.numpy().astype(bool),
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
