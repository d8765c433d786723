"""FPN-IAIA-BL and its baselines (nn.Modules, no I/O except `pretrained` and `checkpoint`)."""

from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.baselines import AddOn, BlackBoxVGG
from fpnpipe.model.build import Model, build_model, build_network
from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint, model_config, save_checkpoint
from fpnpipe.model.fpn import FeaturePyramid
from fpnpipe.model.head import LastLayer, class_connections, class_identity
from fpnpipe.model.network import PrototypeNetwork, PrototypeOutput
from fpnpipe.model.prototypes import (
    PrototypeLayer,
    cosine_similarity_maps,
    focal_similarity,
    log_similarity_maps,
    topk_mean,
)

__all__ = [
    "AddOn",
    "BlackBoxVGG",
    "CheckpointError",
    "FeaturePyramid",
    "LastLayer",
    "Model",
    "PrototypeLayer",
    "PrototypeNetwork",
    "PrototypeOutput",
    "VGGBackbone",
    "build_model",
    "build_network",
    "class_connections",
    "class_identity",
    "cosine_similarity_maps",
    "focal_similarity",
    "load_checkpoint",
    "log_similarity_maps",
    "model_config",
    "save_checkpoint",
    "topk_mean",
]
