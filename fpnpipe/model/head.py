"""The last layer h: a linear map from prototype similarities to class logits (paper Section 3.2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def class_identity(prototype_class: Tensor, num_classes: int) -> Tensor:
    """(C, m) float matrix: 1 where prototype j belongs to class c, else 0."""
    return torch.nn.functional.one_hot(prototype_class, num_classes).T.float()


def class_connections(prototype_class: Tensor, num_classes: int, incorrect: float) -> Tensor:
    """ProtoPNet's initial last-layer weights (C, m): +1 from each prototype to its class, `incorrect`
    to every other class."""
    own = class_identity(prototype_class, num_classes)
    return own + incorrect * (1 - own)


class LastLayer(nn.Linear):
    """h: (B, m) similarities -> (B, C) logits, no bias; softmax of the logits gives the probabilities.

    Initialised by `class_connections` (model.incorrect_class_connection for the wrong classes)."""

    def __init__(self, prototype_class: Tensor, num_classes: int, incorrect_class_connection: float = -0.5) -> None:
        super().__init__(prototype_class.numel(), num_classes, bias=False)
        self.incorrect_class_connection = float(incorrect_class_connection)
        with torch.no_grad():
            self.weight.copy_(class_connections(prototype_class, num_classes, self.incorrect_class_connection))
