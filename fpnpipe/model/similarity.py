"""How a prototype is compared with the latent patches: one object per similarity, not a string switch.

Each similarity maps a latent map z (B, d, H, W) and prototypes (m, d) to patch similarity maps (B, m, H, W)
(higher = more similar), and says what else depends on it: how prototypes start, whether the
orthogonality term of eq. (4) makes sense in its latent space, and the colour range an explanation draws.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Similarity(nn.Module, ABC):
    """A patch similarity (no parameters, no buffers: it adds nothing to a state dict).

    name: the params value that selects it; orthogonality: whether the orthogonality loss applies to
    prototypes compared this way; value_label: what the values are, for colour bars."""

    name: ClassVar[str]
    orthogonality: ClassVar[bool]
    value_label: ClassVar[str]

    @abstractmethod
    def forward(self, z: Tensor, prototypes: Tensor) -> Tensor:
        """z (B, d, H, W), prototypes (m, d) -> (B, m, H, W) float32, also under autocast."""

    @abstractmethod
    def init_prototypes(self, m: int, d: int) -> Tensor:
        """(m, d) initial prototype vectors, drawn from torch's global generator."""

    @abstractmethod
    def colour_range(self, self_activation: np.ndarray) -> tuple[float, float]:
        """(vmin, vmax) spanned by the colour map of an explanation; self_activation (m, S, S) holds each
        projected prototype's map on its own source crop."""


class CosineSimilarity(Similarity):
    """Cosine similarity of every 1x1 patch with every prototype (FPN-IAIA-BL, paper eq. 2), in [-1, 1].

    The norms are taken in float32; a norm below `eps` counts as `eps`, so an all-zero patch or prototype has
    similarity 0. Prototypes start standard normal (directions spread over the sphere: the FPN outputs carry
    both signs). Explanations draw the fixed range [0, 1] (dissimilar patches share the darkest colour)."""

    name = "cosine"
    orthogonality = True
    value_label = "patch cosine similarity (values below 0 drawn as 0)"

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, z: Tensor, prototypes: Tensor) -> Tensor:
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32 = z.float()
            p_unit = F.normalize(prototypes.float(), dim=1, eps=self.eps)
            # (z . p_unit) / |z| equals normalising z first, without writing a normalised copy of the map
            dots = F.conv2d(z32, p_unit[:, :, None, None])  # (B, m, H, W)
            return dots / torch.linalg.vector_norm(z32, dim=1, keepdim=True).clamp(min=self.eps)

    def init_prototypes(self, m: int, d: int) -> Tensor:
        return torch.randn(m, d)

    def colour_range(self, self_activation: np.ndarray) -> tuple[float, float]:
        return 0.0, 1.0


class LogEuclideanSimilarity(Similarity):
    """IAIA-BL's similarity: log((dist + 1) / (dist + eps)) with dist the plain Euclidean distance between a
    1x1 patch and a prototype (ProtoPNet's log form; IAIA-BL uses the unsquared distance), in (0, log(1/eps)].

    The distance is computed as sqrt(max(|z|^2 - 2 z.p + |p|^2, 1e-12)): the floor keeps the gradient finite
    where a prototype equals a patch (as right after projection). Prototypes start uniform in [0, 1] (the
    add-on layers end in a sigmoid). The orthogonality term does not apply: in the positive orthant,
    orthogonal prototypes need disjoint supports, so the term would fight the architecture. Explanations
    draw [0, the largest self-activation of any prototype]."""

    name = "log_euclidean"
    orthogonality = False
    value_label = "patch similarity log((d + 1) / (d + 1e-4))"

    def __init__(self, eps: float = 1e-4) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, z: Tensor, prototypes: Tensor) -> Tensor:
        with torch.autocast(device_type=z.device.type, enabled=False):
            z32, p32 = z.float(), prototypes.float()
            z_sq = z32.pow(2).sum(dim=1, keepdim=True)  # (B, 1, H, W)
            p_sq = p32.pow(2).sum(dim=1).view(1, -1, 1, 1)  # (1, m, 1, 1)
            cross = F.conv2d(z32, p32[:, :, None, None])  # (B, m, H, W)
            dist = (z_sq - 2 * cross + p_sq).clamp(min=1e-12).sqrt()
            return torch.log((dist + 1) / (dist + self.eps))

    def init_prototypes(self, m: int, d: int) -> Tensor:
        return torch.rand(m, d)

    def colour_range(self, self_activation: np.ndarray) -> tuple[float, float]:
        top = float(np.max(self_activation)) if np.size(self_activation) else 1.0
        return 0.0, max(top, 1e-6)


SIMILARITIES: dict[str, type[Similarity]] = {cls.name: cls for cls in (CosineSimilarity, LogEuclideanSimilarity)}
"""Every similarity by its name."""


def cosine_similarity_maps(z: Tensor, prototypes: Tensor, eps: float = 1e-6) -> Tensor:
    """CosineSimilarity as a function: z (B, d, H, W), prototypes (m, d) -> (B, m, H, W)."""
    return CosineSimilarity(eps)(z, prototypes)


def log_similarity_maps(z: Tensor, prototypes: Tensor, eps: float = 1e-4) -> Tensor:
    """LogEuclideanSimilarity as a function: z (B, d, H, W), prototypes (m, d) -> (B, m, H, W)."""
    return LogEuclideanSimilarity(eps)(z, prototypes)
