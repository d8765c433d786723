"""The model registry, keyed by `model.arch`: one module per architecture under fpnpipe/model/archs/, each
with a `build(model, prototypes) -> ClassifierNet` function and a one-line `DESCRIPTION`.

Registering an architecture is one entry here. The table is plain data (fpnpipe.model.build imports the
module when a model is built), so that the params validation, which checks `model.arch` and the prototype
maps against it, never imports torch.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Pooling = Literal["per_level", "top_level", "none"]
"""Which latent maps an architecture pools prototypes on: per_level = every FPN level holding prototypes,
each with its own top-k; top_level = one map at FPN level 5 (the conv-5 map) with the level-5 top-k,
holding every prototype; none = no prototypes."""


class Architecture(NamedTuple):
    module: str
    """The module that builds it."""
    pooling: Pooling


ARCHITECTURES: dict[str, Architecture] = {
    "fpn_iaiabl": Architecture("fpnpipe.model.archs.fpn_iaiabl", "per_level"),
    "iaiabl": Architecture("fpnpipe.model.archs.iaiabl", "top_level"),
    "vgg16": Architecture("fpnpipe.model.archs.vgg16", "none"),
}
