"""Receptive-field arithmetic on grid indices, one spatial axis at a time.

A layer is described by its geometry (kernel, stride, padding). Output cells lo..hi of such a layer read
input cells lo*stride - padding .. hi*stride - padding + kernel - 1 (inclusive), so walking a stack of
layers backwards turns a cell of a feature map into the exact range of input pixels that can influence it
(the theoretical receptive field). Ranges may extend past the image; callers clip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from torch import nn


class Geometry(NamedTuple):
    """Square kernel size, stride and zero padding of one spatial layer."""

    kernel: int
    stride: int
    padding: int


class Span(NamedTuple):
    """Inclusive range [lo, hi] of cell indices along one axis."""

    lo: int
    hi: int

    def union(self, other: Span) -> Span:
        return Span(min(self.lo, other.lo), max(self.hi, other.hi))


def _square(value: object, what: str, module: nn.Module) -> int:
    if isinstance(value, int):
        return value
    if not isinstance(value, tuple):
        raise ValueError(f"receptive-field arithmetic needs a numeric {what}, got {value!r} in {module}")
    if len(set(value)) != 1:
        raise ValueError(f"receptive-field arithmetic needs a square {what}, got {value} in {module}")
    return int(value[0])


def geometry_of(module: nn.Module) -> Geometry | None:
    """Geometry of a Conv2d / MaxPool2d / AvgPool2d; None for layers that keep positions (ReLU, ...)."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        dilation = _square(module.dilation, "dilation", module)
        if dilation != 1:
            raise ValueError(f"dilated layers are not supported: {module}")
        if isinstance(module, nn.MaxPool2d) and module.ceil_mode:
            raise ValueError(f"ceil_mode pooling is not supported: {module}")
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return Geometry(
            _square(module.kernel_size, "kernel", module),
            _square(module.stride, "stride", module),
            _square(module.padding, "padding", module),
        )
    return None


def geometries(modules: Iterable[nn.Module]) -> list[Geometry]:
    """The geometries of the spatial layers among `modules`, in order."""
    return [g for g in map(geometry_of, modules) if g is not None]


def back_project(span: Span, layers: Sequence[Geometry]) -> Span:
    """Input cells read by output cells `span` of the stack `layers` (applied first to last)."""
    lo, hi = span
    for kernel, stride, padding in reversed(layers):
        lo, hi = lo * stride - padding, hi * stride - padding + kernel - 1
    return Span(lo, hi)


def output_size(size: int, layers: Sequence[Geometry]) -> int:
    """Length of the output axis of `layers` for an input axis of `size` cells (floor mode)."""
    for kernel, stride, padding in layers:
        size = (size + 2 * padding - kernel) // stride + 1
    return size


def nearest_source(span: Span, in_size: int, out_size: int) -> Span:
    """Source cells of output cells `span` of a nearest-neighbour resize from `in_size` to `out_size`
    (torch's `nearest`: source index = floor(output index * in_size / out_size))."""
    return Span(min(span.lo * in_size // out_size, in_size - 1), min(span.hi * in_size // out_size, in_size - 1))
