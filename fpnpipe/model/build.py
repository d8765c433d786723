"""Building a model from its params (model.*, prototypes.*)."""

from __future__ import annotations

import logging

import torch

from fpnpipe.classes import CLASSES, FPN_LEVELS
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.baselines import AddOn, BlackBoxVGG
from fpnpipe.model.fpn import FeaturePyramid
from fpnpipe.model.head import LastLayer
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.model.pretrained import load_imagenet_features
from fpnpipe.model.prototypes import PrototypeLayer

log = logging.getLogger(__name__)

Model = PrototypeNetwork | BlackBoxVGG
"""Any model `build_model` returns; all share forward / forward_features / forward_head / param_groups."""


def build_network(model: ModelParams, prototypes: PrototypeParams) -> Model:
    """The network of `model.arch` with freshly initialised weights (no file is read).

    fpn_iaiabl: VGG-16 -> FeaturePyramid (d = model.fpn_channels) -> cosine prototypes at levels 2-5 with
    focal (or top-k) pooling -> last layer.
    iaiabl: VGG-16 -> AddOn on c5 (d = model.addon_channels) -> log-distance prototypes with top-k pooling
    -> last layer. Its single level is the conv-5 map, so each class gets the sum of its per-level counts
    and k is prototypes.top_k's level-5 value.
    vgg16: VGG-16 -> global average pooling -> linear.
    """
    backbone = VGGBackbone(model.width)
    num_classes = len(CLASSES)
    if model.arch == "vgg16":
        return BlackBoxVGG(backbone, num_classes)
    per_level = prototypes.per_class.per_level()
    top_k = dict(zip(FPN_LEVELS, prototypes.top_k))
    if model.arch == "fpn_iaiabl":
        neck: FeaturePyramid | AddOn = FeaturePyramid(
            {lv: backbone.out_channels[lv] for lv in FPN_LEVELS}, model.fpn_channels
        )
        layer = PrototypeLayer(
            per_level, model.fpn_channels, top_k, similarity="cosine", focal=prototypes.similarity == "focal",
            border_fraction=prototypes.border_fraction,
        )
    else:
        top = FPN_LEVELS[-1]
        neck = AddOn(backbone.out_channels[top], model.addon_channels, level=top)
        totals = tuple(sum(counts[c] for counts in per_level.values()) for c in range(num_classes))
        layer = PrototypeLayer({top: totals}, model.addon_channels, {top: top_k[top]}, "log_euclidean", focal=False,
                               border_fraction=prototypes.border_fraction)
    last = LastLayer(layer.prototype_class, num_classes, model.incorrect_class_connection)
    return PrototypeNetwork(model.arch, backbone, neck, layer, last)


def build_model(model: ModelParams, prototypes: PrototypeParams, *, seed: int | None = None) -> Model:
    """`build_network`, then the ImageNet backbone weights from `model.pretrained` if set.

    seed: if given, the initialisation draws from torch.manual_seed(seed) without touching the caller's
    random state, so equal params and seed give equal weights. Raises ConfigError for a bad weights file.
    """
    if seed is None:
        net = build_network(model, prototypes)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_network(model, prototypes)
    if model.pretrained is None:
        log.warning("model.pretrained is null: the VGG-16 backbone starts from random weights, not ImageNet")
    else:
        load_imagenet_features(net.backbone, model.pretrained)
        log.info("loaded ImageNet VGG-16 weights from %s", model.pretrained)
    return net
