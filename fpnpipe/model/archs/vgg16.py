"""The uninterpretable baseline of Table 1: VGG-16 features, global average pooling, one linear layer."""

from __future__ import annotations

from fpnpipe.classes import CLASSES
from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.blackbox import BlackBoxVGG

DESCRIPTION = "VGG-16 black box: conv features, global average pooling, linear classifier"


def build(model: ModelParams, prototypes: PrototypeParams) -> BlackBoxVGG:
    """The network with fresh weights (prototypes.* is not read)."""
    return BlackBoxVGG(VGGBackbone(model.width), len(CLASSES))
