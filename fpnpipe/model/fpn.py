"""The top-down pathway of FPN-IAIA-BL: equation (1) of the paper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from fpnpipe.model.neck import Neck
from fpnpipe.model.receptive_field import Span, back_project, geometries, nearest_source


class FeaturePyramid(Neck):
    """Feature pyramid of equation (1) (FPN-IAIA-BL, after Lin et al.'s FPN):

        z5 = Conv1x1(c5)
        zl = Conv3x3(Up(z(l+1)) + Conv1x1(cl))   for l = 4, 3, 2, Up = nearest resize to cl's size.

    This differs from torchvision's FeaturePyramidNetwork, which also puts a 3x3 conv on the top level and
    carries the pre-3x3 sum down the top-down path; here z(l+1), the output after its 3x3 conv, goes down.
    No activation follows the convolutions (eq. 1 has none).

    Args:
        in_channels: channels of the taps, keyed by level, e.g. {2: 128, 3: 256, 4: 512, 5: 512}.
        out_channels: d, the channels of every output level.
        smooth_bias: whether the 3x3 convolutions have a bias. A prototype layer that centres its maps
            (prototypes.center_latent) removes every constant a bias adds, so its gradient is rounding noise
            that Adam would turn into steps of the learning rate's size: those models are built without.

    Input: the taps (c2, ..., c5), finest first, e.g. (B, 128, 56, 56) ... (B, 512, 14, 14).
    Output: (z2, ..., z5), each (B, d, H_l, W_l) with the size of its tap.
    """

    def __init__(self, in_channels: Mapping[int, int], out_channels: int, smooth_bias: bool = True) -> None:
        super().__init__()
        self.levels: tuple[int, ...] = tuple(sorted(in_channels))
        if len(self.levels) < 1 or out_channels < 1:
            raise ValueError("a feature pyramid needs at least one level and out_channels >= 1")
        self.out_channels = out_channels
        self.lateral = nn.ModuleList(nn.Conv2d(in_channels[lv], out_channels, 1) for lv in self.levels)
        # One 3x3 per level below the top (eq. 1); smooth[i] belongs to self.levels[i].
        self.smooth = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=smooth_bias)
                                    for _ in self.levels[:-1])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, taps: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(taps) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} taps (levels {self.levels}), got {len(taps)}")
        z = self.lateral[-1](taps[-1])
        pyramid = [z]
        for i in range(len(self.levels) - 2, -1, -1):
            lateral = self.lateral[i](taps[i])
            z = self.smooth[i](F.interpolate(z, size=lateral.shape[-2:], mode="nearest") + lateral)
            pyramid.append(z)
        return tuple(reversed(pyramid))

    def source_spans(
        self, level: int, span: Span, sizes: Mapping[int, int], include_top_down: bool = False
    ) -> dict[int, Span]:
        """Cells of each tap c_l that output cells `span` of z_level read, along one axis.

        sizes: cells along that axis at each level. With include_top_down=False only the lateral path
        (Conv1x1 of c_level, then the level's 3x3) counts; with True the upsampled coarser levels count too.
        """
        i = self.levels.index(level)
        if i < len(self.levels) - 1:
            span = back_project(span, geometries([self.smooth[i]]))
        spans = {level: back_project(span, geometries([self.lateral[i]]))}
        if include_top_down and i < len(self.levels) - 1:
            coarser = self.levels[i + 1]
            up = nearest_source(span, sizes[coarser], sizes[level])
            for lv, s in self.source_spans(coarser, up, sizes, True).items():
                spans[lv] = spans[lv].union(s) if lv in spans else s
        return spans
