"""VGG-16 bottom-up pathway with the four taps c2..c5 of the paper (Section 3.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from fpnpipe.model.receptive_field import Geometry, Span, back_project, geometries, output_size

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""The input normalisation torchvision's ImageNet VGG-16 weights expect (RGB order)."""

BACKBONE_LEVELS: tuple[int, ...] = (2, 3, 4, 5)


def vgg16_cfg(width: float = 1.0) -> list[int | str]:
    """torchvision's VGG-16 layer list (configuration "D") with every channel count scaled by `width`
    (rounded, at least 1), and without the final max-pool: c5 is the last conv block's output, IAIA-BL's
    14 x 14 latent map at 224 px."""
    if not 0 < width <= 1:
        raise ValueError(f"model.width must lie in (0, 1], got {width}")
    return [v if v == "M" else max(1, round(int(v) * width)) for v in cfgs["D"][:-1]]


class VGGBackbone(nn.Module):
    """VGG-16 convolutional features (torchvision's topology and parameter names) tapped at four levels.

    Taps: c2 = block-2 max-pool output, c3 = block-3 max-pool, c4 = block-4 max-pool, c5 = the last conv
    block's ReLU output. Strides 4, 8, 16, 16; channels 128, 256, 512, 512 times `width`.

    Input: (B, 1, H, W) grey crops in [0, 1] (replicated to 3 channels) or (B, 3, H, W) in [0, 1]; both are
    then normalised with the ImageNet mean and std. Output: (c2, c3, c4, c5), e.g. for (1, 1, 224, 224) at
    width 1: (1, 128, 56, 56), (1, 256, 28, 28), (1, 512, 14, 14), (1, 512, 14, 14).

    `width` < 1 builds the same topology with fewer channels; its parameters then have other shapes than
    torchvision's VGG-16, so ImageNet weights cannot be loaded into it.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = float(width)
        # Parameter names equal torchvision's `VGG.features` (features.0.weight, ...), so its state dict loads.
        self.features = make_layers(vgg16_cfg(width))
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        tap_index = (pools[1], pools[2], pools[3], len(self.features) - 1)
        self.tap_index: dict[int, int] = dict(zip(BACKBONE_LEVELS, tap_index, strict=True))
        self.out_channels: dict[int, int] = {
            level: [m for m in self.features[: i + 1] if isinstance(m, nn.Conv2d)][-1].out_channels
            for level, i in self.tap_index.items()
        }
        self.tap_geometry: dict[int, list[Geometry]] = {
            level: geometries(self.features[: i + 1]) for level, i in self.tap_index.items()
        }
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's VGG initialisation: Kaiming normal (fan out, ReLU) weights, zero biases."""
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def normalise(self, x: Tensor) -> Tensor:
        """(B, 1 or 3, H, W) in [0, 1] -> (B, 3, H, W) normalised as the ImageNet weights expect."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected input of shape (B, 1, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"input must be at least 16 x 16 pixels, got {tuple(x.shape[-2:])}")
        x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.normalise(x)
        taps: list[Tensor] = []
        wanted = set(self.tap_index.values())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                taps.append(x)
        c2, c3, c4, c5 = taps
        return c2, c3, c4, c5

    def tap_size(self, level: int, size: int) -> int:
        """Cells along one axis of tap c_level for an input axis of `size` pixels."""
        return output_size(size, self.tap_geometry[level])

    def input_span(self, level: int, span: Span) -> Span:
        """Input pixels (inclusive, may extend past the image) read by cells `span` of tap c_level."""
        return back_project(span, self.tap_geometry[level])
