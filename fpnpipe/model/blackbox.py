"""The uninterpretable baseline of the paper's Table 1: VGG-16 features, global average pooling, linear."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.base import ClassifierNet, PrototypeOutput, TrainingPlan


class BlackBoxVGG(ClassifierNet):
    """forward(x (B, 1, S, S)) -> PrototypeOutput(logits (B, C)) without similarities or activations.

    Trained like the prototype models: stage A the last layer on the frozen backbone, stage C everything, and
    the last-layer-only phase; it has nothing to project."""

    training_plan = TrainingPlan(
        warmup=("last_layer",), joint=("backbone", "last_layer"), last_layer=("last_layer",)
    )

    def __init__(self, backbone: VGGBackbone, num_classes: int) -> None:
        super().__init__()
        self.arch = "vgg16"
        self.levels = ()
        self.backbone = backbone
        self.num_classes = num_classes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.last_layer = nn.Linear(backbone.out_channels[5], num_classes)

    def forward_features(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 1, S, S) -> (c5,), c5 (B, 512 * width, S / 16, S / 16)."""
        return (self.backbone(x)[-1],)

    def forward_head(self, features: Sequence[Tensor]) -> PrototypeOutput:
        return PrototypeOutput(self.last_layer(self.pool(features[-1]).flatten(1)))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group: backbone, last_layer."""
        return {"backbone": list(self.backbone.parameters()), "last_layer": list(self.last_layer.parameters())}
