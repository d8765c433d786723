"""The interface between the backbone taps and the prototype layer (FPN for fpn_iaiabl, add-on for iaiabl)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from fpnpipe.model.receptive_field import Span


class Neck(nn.Module, ABC):
    """Maps the backbone taps of `levels` (finest first) to one latent map per level. Its weights form the
    `neck` parameter group."""

    levels: tuple[int, ...]

    @abstractmethod
    def forward(self, taps: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """taps: one (B, C_l, H_l, W_l) map per level -> one (B, d, H_l, W_l) latent map per level."""

    @abstractmethod
    def source_spans(
        self, level: int, span: Span, sizes: Mapping[int, int], include_top_down: bool = False
    ) -> dict[int, Span]:
        """Cells of each tap that latent cells `span` of `level` read, along one axis (sizes: cells per level)."""
