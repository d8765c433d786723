"""The paper's baselines (Table 1): IAIA-BL's single-scale add-on, and the black-box VGG-16."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.neck import Neck
from fpnpipe.model.network import PrototypeOutput
from fpnpipe.model.receptive_field import Span, back_project, geometries


class AddOn(Neck):
    """IAIA-BL / ProtoPNet add-on layers on the conv-5 map: Conv1x1 -> ReLU -> Conv1x1 -> Sigmoid, giving a
    latent map in [0, 1] for the log-distance similarity.

    Input: (c5,) with c5 (B, C5, H, W). Output: (z,) with z (B, d, H, W)."""

    group_name = "add_on"

    def __init__(self, in_channels: int, out_channels: int, level: int = 5) -> None:
        super().__init__()
        self.levels = (level,)
        self.out_channels = out_channels
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
            nn.Sigmoid(),
        )
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, taps: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(taps) != 1:
            raise ValueError(f"the add-on takes one tap (level {self.levels[0]}), got {len(taps)}")
        return (self.layers(taps[0]),)

    def source_spans(
        self, level: int, span: Span, sizes: Mapping[int, int], include_top_down: bool = False
    ) -> dict[int, Span]:
        return {level: back_project(span, geometries(self.layers))}


class BlackBoxVGG(nn.Module):
    """The uninterpretable baseline: VGG-16 features (c5), global average pooling, one linear layer.

    forward(x (B, 1, S, S)) -> PrototypeOutput(logits (B, C)) without similarities or activations."""

    has_prototypes = False
    arch = "vgg16"
    levels: tuple[int, ...] = (5,)

    def __init__(self, backbone: VGGBackbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.last_layer = nn.Linear(backbone.out_channels[5], num_classes)

    def forward_features(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 1, S, S) -> (c5,), c5 (B, 512 * width, S / 16, S / 16)."""
        return (self.backbone(x)[-1],)

    def forward_head(self, features: Sequence[Tensor]) -> PrototypeOutput:
        return PrototypeOutput(self.last_layer(self.pool(features[-1]).flatten(1)))

    def forward(self, x: Tensor) -> PrototypeOutput:
        return self.forward_head(self.forward_features(x))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group: backbone, last_layer."""
        return {"backbone": list(self.backbone.parameters()), "last_layer": list(self.last_layer.parameters())}
