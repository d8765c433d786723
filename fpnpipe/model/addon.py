"""IAIA-BL's / ProtoPNet's add-on layers: the neck of the single-scale baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from fpnpipe.model.neck import Neck
from fpnpipe.model.receptive_field import Span, back_project, geometries


class AddOn(Neck):
    """Conv1x1 -> ReLU -> Conv1x1 -> Sigmoid on the conv-5 map, giving a latent map in [0, 1] for the
    log-distance similarity (IAIA-BL, ProtoPNet).

    Input: (c5,) with c5 (B, C5, H, W). Output: (z,) with z (B, d, H, W)."""

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
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, taps: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(taps) != 1:
            raise ValueError(f"the add-on takes one tap (level {self.levels[0]}), got {len(taps)}")
        return (self.layers(taps[0]),)

    def source_spans(
        self, level: int, span: Span, sizes: Mapping[int, int], include_top_down: bool = False
    ) -> dict[int, Span]:
        return {level: back_project(span, geometries(self.layers))}
