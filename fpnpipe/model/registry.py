"""The model registry, keyed by `model.arch`: one module per architecture under fpnpipe/model/archs/, each
with a `build(model, prototypes) -> ClassifierNet` function and a one-line `DESCRIPTION`.

Registering an architecture is one entry here. The table is plain data (fpnpipe.model.build imports the
module when a model is built), so that the params validation, which checks `model.arch` and the prototype
maps against it, never imports torch.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Pooling = Literal["per_level", "top_level", "top_level_max", "none"]
"""Which latent maps an architecture pools prototypes on, and with which k: per_level = every FPN level
holding prototypes, each with its own top-k; top_level = one map at FPN level 5 (the conv-5 map) with the
level-5 top-k, holding every prototype; top_level_max = that map pooled by its maximum (k = 1, prototypes.top_k
not read); none = no prototypes."""


class Architecture(NamedTuple):
    module: str
    """The module that builds it."""
    pooling: Pooling
    label: str
    """Its name in tables and figures (e.g. the comparison's Table 1)."""


ARCHITECTURES: dict[str, Architecture] = {
    "fpn_iaiabl": Architecture("fpnpipe.model.archs.fpn_iaiabl", "per_level", "FPN-IAIA-BL"),
    "iaiabl": Architecture("fpnpipe.model.archs.iaiabl", "top_level", "IAIA-BL"),
    "vgg16": Architecture("fpnpipe.model.archs.vgg16", "none", "VGG-16"),
    "protopnet": Architecture("fpnpipe.model.archs.protopnet", "top_level_max", "ProtoPNet"),
}
