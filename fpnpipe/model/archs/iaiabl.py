"""IAIA-BL (Barnett et al. 2021), the single-scale baseline: VGG-16 -> add-on layers on the conv-5 map
(d = model.addon_channels, 14 x 14 at 224 px) -> log-distance prototypes with top-k pooling -> last layer."""

from __future__ import annotations

from fpnpipe.classes import CLASSES, FPN_LEVELS
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.addon import AddOn
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.head import LastLayer
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.model.prototypes import PrototypeLayer
from fpnpipe.model.similarity import LogEuclideanSimilarity

DESCRIPTION = "IAIA-BL: single-scale log-Euclidean prototypes on VGG-16's conv-5 map, top-k pooling"


def build(model: ModelParams, prototypes: PrototypeParams) -> PrototypeNetwork:
    """The network with fresh weights. Its single level is the conv-5 map, so each class gets the sum of
    its per-level prototype counts, and k is prototypes.top_k's level-5 value."""
    backbone = VGGBackbone(model.width)
    top = FPN_LEVELS[-1]
    neck = AddOn(backbone.out_channels[top], model.addon_channels, level=top)
    per_level = prototypes.per_class.per_level()
    totals = tuple(sum(counts[c] for counts in per_level.values()) for c in range(len(CLASSES)))
    layer = PrototypeLayer({top: totals}, model.addon_channels, {top: prototypes.top_k[-1]},
                           LogEuclideanSimilarity(), focal=False, border_fraction=prototypes.border_fraction)
    last = LastLayer(layer.prototype_class, len(CLASSES), model.incorrect_class_connection)
    return PrototypeNetwork("iaiabl", backbone, neck, layer, last)
