"""The prototype layer g (paper Section 3.2): patch similarities and their pooling, per FPN level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fpnpipe.config.model import border_cells
from fpnpipe.model.similarity import Similarity


def topk_mean(maps: Tensor, k: int) -> Tensor:
    """Mean of the k largest values of each map (top-k average pooling, Kalchbrenner et al. / IAIA-BL).

    maps: (B, m, H, W) -> (B, m). Raises ValueError if k exceeds H * W."""
    cells = maps.shape[-2] * maps.shape[-1]
    if not 1 <= k <= cells:
        raise ValueError(
            f"prototypes.top_k = {k} does not fit a {maps.shape[-2]} x {maps.shape[-1]} map ({cells} cells); "
            "lower prototypes.top_k for this level or use larger crops"
        )
    return maps.flatten(2).topk(k, dim=2).values.mean(dim=2)


def center_latent(z: Tensor) -> Tensor:
    """Each latent map minus its mean patch: z - mean over (H, W) of z, per image and channel.

    z: (B, d, H, W) -> (B, d, H, W)."""
    return z - z.mean(dim=(-2, -1), keepdim=True)


def focal_similarity(maps: Tensor, k: int) -> Tensor:
    """Focal similarity (paper eq. 3, from ProtoPool): mean of the k largest patch similarities minus the
    mean over all patches of the map. maps: (B, m, H, W) -> (B, m)."""
    return topk_mean(maps, k) - maps.flatten(2).mean(dim=2)


class PrototypeLayer(nn.Module):
    """m prototypes of dimension d, each belonging to one class and one level, compared with the latent
    map of its level.

    Args:
        counts: {level: prototype counts per class in class-index order}, e.g. {2: (2, 2, 2, 2), ...}.
            Levels are taken in increasing order; a level may have no prototypes.
        dim: d.
        top_k: {level: k} of the top-k pooling.
        similarity: how patches and prototypes are compared (fpnpipe.model.similarity): CosineSimilarity
            (eq. 2) or LogEuclideanSimilarity (IAIA-BL); it also draws the initial prototypes.
        focal: subtract the map mean after top-k pooling (eq. 3); IAIA-BL does not.
        border_fraction: the patches whose centre lies within this fraction of the crop side from its edge
            take no part in pooling or projection (prototypes.border_fraction; 0 = none, as in the paper).
            The activation maps returned are always the raw maps over the whole crop: what the model
            computes there is what the fine-annotation loss, the metrics and the explanations see.
        center: compare the prototypes with `center_latent(z)` instead of z (prototypes.center_latent;
            False = eq. 2 as printed); projection then takes its patches from the centred map too.

    Global prototype order j: for level in increasing order, for class in index order, that many
    prototypes; so each level's prototypes are the contiguous rows `level_slice(level)`.

    Buffers: prototype_class (m,) long, prototype_level (m,) long. Parameter: prototype_vectors (m, d).

    forward(features): features = one (B, d, H_l, W_l) map per level, in level order.
    Returns (similarities (B, m) pooled over each map, activations = per level the patch similarity maps
    (B, m_l, H_l, W_l); a level without prototypes gives an empty (B, 0, H_l, W_l) map).
    """

    prototype_class: Tensor
    prototype_level: Tensor

    def __init__(
        self,
        counts: Mapping[int, Sequence[int]],
        dim: int,
        top_k: Mapping[int, int],
        similarity: Similarity,
        focal: bool = True,
        border_fraction: float = 0.0,
        center: bool = False,
    ) -> None:
        super().__init__()
        self.levels: tuple[int, ...] = tuple(sorted(counts))
        missing_k = [lv for lv in self.levels if lv not in top_k]
        if missing_k:
            raise ValueError(f"prototypes.top_k is missing for levels {missing_k}")
        self.num_classes = len(counts[self.levels[0]])
        if any(len(counts[lv]) != self.num_classes for lv in self.levels):
            raise ValueError("prototype counts must list every class at every level")
        self.dim = dim
        self.top_k: dict[int, int] = {lv: int(top_k[lv]) for lv in self.levels}
        self.similarity = similarity
        self.focal = focal
        if not 0 <= border_fraction < 0.5:
            raise ValueError(f"prototypes.border_fraction must lie in [0, 0.5), got {border_fraction}")
        self.border_fraction = border_fraction
        self.center = center

        classes: list[int] = []
        levels: list[int] = []
        self._slices: dict[int, tuple[int, int]] = {}
        for lv in self.levels:
            start = len(classes)
            for c, n in enumerate(counts[lv]):
                classes += [c] * int(n)
            levels += [lv] * (len(classes) - start)
            self._slices[lv] = (start, len(classes))
        if not classes:
            raise ValueError("the prototype layer needs at least one prototype")
        self.register_buffer("prototype_class", torch.tensor(classes, dtype=torch.long), persistent=False)
        self.register_buffer("prototype_level", torch.tensor(levels, dtype=torch.long), persistent=False)
        self.prototype_vectors = nn.Parameter(similarity.init_prototypes(len(classes), dim))

    @property
    def num_prototypes(self) -> int:
        return self.prototype_vectors.shape[0]

    def level_slice(self, level: int) -> slice:
        """Rows of this level's prototypes in the global order."""
        return slice(*self._slices[level])

    def level_prototypes(self, level: int) -> Tensor:
        """(m_l, d) view of this level's prototype vectors."""
        return self.prototype_vectors[self.level_slice(level)]

    @torch.no_grad()
    def set_prototype(self, j: int, vector: Tensor) -> None:
        """Overwrite prototype j (global index) with `vector` (d,), e.g. its projection onto a latent patch."""
        if vector.shape != (self.dim,):
            raise ValueError(f"prototype vector must have shape ({self.dim},), got {tuple(vector.shape)}")
        self.prototype_vectors[j].copy_(vector)

    @torch.no_grad()
    def set_prototypes(self, index: Tensor, vectors: Tensor) -> None:
        """Overwrite prototypes `index` (n,) long with `vectors` (n, d) in one operation."""
        if vectors.shape != (index.numel(), self.dim):
            raise ValueError(f"expected vectors of shape ({index.numel()}, {self.dim}), got {tuple(vectors.shape)}")
        self.prototype_vectors[index.to(self.prototype_vectors.device)] = vectors.to(self.prototype_vectors)

    def latent(self, z: Tensor) -> Tensor:
        """The map (B, d, H, W) the prototypes are compared with and projected onto: `center_latent(z)` with
        `center`, else z."""
        return center_latent(z) if self.center else z

    def similarity_maps(self, z: Tensor, prototypes: Tensor) -> Tensor:
        """Patch similarity maps (B, m_l, H, W) of `prototypes` (m_l, d) on z (B, d, H, W)."""
        return self.similarity(z, prototypes)

    def border_cells(self, cells: int) -> int:
        """Edge cells left out of a map `cells` wide: cell i is centred at (i + 0.5) / cells of the crop side."""
        return border_cells(self.border_fraction, cells)

    def interior(self, maps: Tensor) -> Tensor:
        """(B, m_l, H, W) -> the maps without their border cells."""
        h, w = maps.shape[-2:]
        nh, nw = self.border_cells(h), self.border_cells(w)
        if nh == nw == 0:
            return maps
        if h <= 2 * nh or w <= 2 * nw:
            raise ValueError(
                f"prototypes.border_fraction leaves no patch of a {h} x {w} map; lower it or use larger crops"
            )
        return maps[..., nh : h - nh, nw : w - nw]

    def fill_border(self, maps: Tensor, value: float) -> Tensor:
        """The maps (B, m_l, H, W) with their border cells set to `value` (e.g. -inf so that projection never
        picks them); unchanged without a border."""
        h, w = maps.shape[-2:]
        nh, nw = self.border_cells(h), self.border_cells(w)
        if nh == nw == 0:
            return maps
        self.interior(maps)  # raises if the border leaves no patch
        fill = torch.full_like(maps[..., :1, :1], value)
        keep = torch.zeros((h, w), dtype=torch.bool, device=maps.device)
        keep[nh : h - nh, nw : w - nw] = True
        return torch.where(keep, maps, fill)

    def pool(self, maps: Tensor, level: int) -> Tensor:
        """(B, m_l, H, W) -> (B, m_l): focal or plain top-k pooling with this level's k, over the interior."""
        k = self.top_k[level]
        inner = self.interior(maps)
        return focal_similarity(inner, k) if self.focal else topk_mean(inner, k)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        if len(features) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} feature maps (levels {self.levels}), got {len(features)}")
        pooled: list[Tensor] = []
        maps: list[Tensor] = []
        for level, z in zip(self.levels, features, strict=True):
            if z.ndim != 4 or z.shape[1] != self.dim:
                raise ValueError(f"level {level}: expected a (B, {self.dim}, H, W) map, got {tuple(z.shape)}")
            prototypes = self.level_prototypes(level)
            if prototypes.shape[0] == 0:
                maps.append(z.new_zeros((z.shape[0], 0, *z.shape[-2:]), dtype=torch.float32))
                continue
            level_maps = self.similarity_maps(self.latent(z), prototypes)
            maps.append(level_maps)
            pooled.append(self.pool(level_maps, level))
        return torch.cat(pooled, dim=1), tuple(maps)
