"""ProtoPNet (Chen et al. 2019) as the paper's Figure 4 compares it: IAIA-BL's single-scale network (VGG-16 ->
add-on layers on the conv-5 map -> log-distance prototypes -> last layer) pooled by the maximum patch
similarity (the minimum distance, k = 1) and trained without the fine-annotation term."""

from __future__ import annotations

from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.archs import iaiabl
from fpnpipe.model.network import PrototypeNetwork

DESCRIPTION = "ProtoPNet: IAIA-BL's single-scale log-Euclidean prototypes, max pooling, no fine-annotation loss"

MAX_POOLING_K = 1
"""ProtoPNet pools each prototype's map by its best patch: top-k pooling with k = 1."""


class ProtoPNet(PrototypeNetwork):
    """A PrototypeNetwork whose objective leaves out the fine-annotation term (it never sees the masks)."""

    uses_fine_annotation = False


def build(model: ModelParams, prototypes: PrototypeParams) -> ProtoPNet:
    """The network with fresh weights: IAIA-BL's build with k = 1 (prototypes.top_k is not read), so with the
    same seed both baselines start from the same weights. Prototype counts: the sum over the levels of
    prototypes.per_class, as for iaiabl."""
    top_k = (*prototypes.top_k[:-1], MAX_POOLING_K)
    net = iaiabl.build(model, prototypes.model_copy(update={"top_k": top_k}))
    return ProtoPNet("protopnet", net.backbone, net.neck, net.prototype_layer, net.last_layer)
