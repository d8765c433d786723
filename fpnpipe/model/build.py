"""Building a model from its params (model.*, prototypes.*) through the registry."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

from fpnpipe.config import ModelParams, PrototypeParams
from fpnpipe.model.base import ClassifierNet
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.model.pretrained import load_imagenet_features
from fpnpipe.model.registry import ARCHITECTURES

log = logging.getLogger(__name__)

Model = ClassifierNet
"""Any model the registry builds: forward / forward_features / forward_head / param_groups / training_plan."""


def architecture(name: str) -> ModuleType:
    """The module of a registered architecture (fpnpipe.model.registry); ValueError naming the registered
    ones otherwise."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model.arch {name!r}; registered: {', '.join(ARCHITECTURES)}")
    return importlib.import_module(ARCHITECTURES[name].module)


def build_network(model: ModelParams, prototypes: PrototypeParams) -> ClassifierNet:
    """The network of `model.arch` (fpnpipe.model.registry) with freshly initialised weights; no file is read.
    The architecture's own module says what it builds (e.g. fpnpipe/model/archs/fpn_iaiabl.py)."""
    net = architecture(model.arch).build(model, prototypes)
    net.training_plan.check(list(net.param_groups()), model.arch)
    return net


def build_model(model: ModelParams, prototypes: PrototypeParams, *, seed: int | None = None) -> ClassifierNet:
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


def prototype_network(model: ClassifierNet) -> PrototypeNetwork | None:
    """The model as a prototype network, or None for a model without prototypes (the black box): the one
    place where code that needs prototypes (projection, activation metrics, explanations) asks."""
    return model if isinstance(model, PrototypeNetwork) else None
