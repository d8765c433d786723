"""The model registry, keyed by `model.arch`: one module per architecture under fpnpipe/model/archs/, each
with a `build(model, prototypes) -> ClassifierNet` function and a one-line `DESCRIPTION`.

Registering an architecture is one line here. The table is plain strings (fpnpipe.model.build imports the
module when a model is built), so that the params validation, which checks `model.arch` against it, never
imports torch.
"""

from __future__ import annotations

ARCHITECTURES: dict[str, str] = {
    "fpn_iaiabl": "fpnpipe.model.archs.fpn_iaiabl",
    "iaiabl": "fpnpipe.model.archs.iaiabl",
    "vgg16": "fpnpipe.model.archs.vgg16",
}
"""arch name -> the module that builds it."""
