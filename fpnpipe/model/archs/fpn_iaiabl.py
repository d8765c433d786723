"""FPN-IAIA-BL, the paper's model: VGG-16 -> feature pyramid (eq. 1, d = model.fpn_channels) -> cosine
prototypes at FPN levels 2-5 (eq. 2) with focal (eq. 3) or top-k pooling -> last layer."""

from __future__ import annotations

from fpnpipe.classes import CLASSES, FPN_LEVELS
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.fpn import FeaturePyramid
from fpnpipe.model.head import LastLayer
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.model.prototypes import PrototypeLayer
from fpnpipe.model.similarity import CosineSimilarity

DESCRIPTION = "FPN-IAIA-BL: multi-scale cosine prototypes on a VGG-16 feature pyramid (the paper)"


def build(model: ModelParams, prototypes: PrototypeParams) -> PrototypeNetwork:
    """The network with fresh weights. Prototype counts per class and level: prototypes.per_class."""
    backbone = VGGBackbone(model.width)
    neck = FeaturePyramid({lv: backbone.out_channels[lv] for lv in FPN_LEVELS}, model.fpn_channels,
                          smooth_bias=not prototypes.center_latent)
    layer = PrototypeLayer(
        prototypes.per_class.per_level(), model.fpn_channels, dict(zip(FPN_LEVELS, prototypes.top_k, strict=True)),
        CosineSimilarity(), focal=prototypes.similarity == "focal", border_fraction=prototypes.border_fraction,
        center=prototypes.center_latent,
    )
    last = LastLayer(layer.prototype_class, len(CLASSES), model.incorrect_class_connection)
    return PrototypeNetwork("fpn_iaiabl", backbone, neck, layer, last)
