"""The prototype network: backbone -> neck (FPN or add-on) -> prototype layer g -> last layer h."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fpnpipe.model.backbone import BACKBONE_LEVELS, VGGBackbone
from fpnpipe.model.base import ClassifierNet, PrototypeOutput, TrainingPlan
from fpnpipe.model.head import LastLayer
from fpnpipe.model.neck import Neck
from fpnpipe.model.prototypes import PrototypeLayer
from fpnpipe.model.receptive_field import Span


class PrototypeNetwork(ClassifierNet):
    """A prototype network: FPN-IAIA-BL (neck = FeaturePyramid, levels 2-5) or the IAIA-BL baseline (neck =
    AddOn, level 5), as the registry's architectures assemble it.

    forward(x (B, 1, S, S) in [0, 1]) -> PrototypeOutput; split as forward_features (latent maps, one per
    level: (B, d, H_l, W_l)) and forward_head (prototype layer + last layer), after timm.
    """

    training_plan = TrainingPlan(
        warmup=("neck", "prototypes"),
        joint=("backbone", "neck", "prototypes", "last_layer"),
        last_layer=("last_layer",),
    )
    uses_fine_annotation = True

    def __init__(
        self, arch: str, backbone: VGGBackbone, neck: Neck, prototype_layer: PrototypeLayer, last_layer: LastLayer
    ) -> None:
        super().__init__()
        if tuple(neck.levels) != prototype_layer.levels:
            raise ValueError(f"neck levels {neck.levels} differ from prototype levels {prototype_layer.levels}")
        self.arch = arch
        self.backbone = backbone
        self.neck = neck
        self.prototype_layer = prototype_layer
        self.last_layer = last_layer
        self.levels: tuple[int, ...] = prototype_layer.levels
        self.num_classes: int = last_layer.out_features
        self._tap_positions = [BACKBONE_LEVELS.index(lv) for lv in self.levels]

    @property
    def prototype_class(self) -> Tensor:
        """(m,) long: class index of each prototype."""
        return self.prototype_layer.prototype_class

    @property
    def prototype_level(self) -> Tensor:
        """(m,) long: FPN level of each prototype."""
        return self.prototype_layer.prototype_level

    @property
    def num_prototypes(self) -> int:
        return self.prototype_layer.num_prototypes

    def level_slice(self, level: int) -> slice:
        """Global indices of this level's prototypes."""
        return self.prototype_layer.level_slice(level)

    def level_prototypes(self, level: int) -> Tensor:
        """(m_l, d) prototype vectors of one level."""
        return self.prototype_layer.level_prototypes(level)

    def set_prototype(self, j: int, vector: Tensor) -> None:
        """Overwrite prototype j with `vector` (d,)."""
        self.prototype_layer.set_prototype(j, vector)

    def forward_features(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, 1, S, S) -> per level of `self.levels` the latent map (B, d, H_l, W_l)."""
        taps = self.backbone(x)
        return self.neck([taps[i] for i in self._tap_positions])

    def forward_head(self, features: Sequence[Tensor]) -> PrototypeOutput:
        similarities, activations = self.prototype_layer(features)
        logits = self.last_layer(similarities)
        return PrototypeOutput(logits, similarities, activations, self.prototype_layer.prototype_vectors)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group: backbone, neck (the FPN, or the add-on layers of iaiabl), prototypes,
        last_layer."""
        return {
            "backbone": list(self.backbone.parameters()),
            "neck": list(self.neck.parameters()),
            "prototypes": [self.prototype_layer.prototype_vectors],
            "last_layer": list(self.last_layer.parameters()),
        }

    def receptive_field(
        self, level: int, i: int, j: int, image_size: int | tuple[int, int], include_top_down: bool = False
    ) -> tuple[int, int, int, int]:
        """Receptive-field box (x0, y0, x1, y1) in input pixels (x1, y1 exclusive, clipped to the image) of
        grid cell (row i, column j) of the latent map at `level`.

        Computed exactly from the layers' kernels, strides and paddings. By default only the lateral path
        counts (VGG up to c_level, the 1x1 lateral, the level's 3x3): this is the approximation we use,
        because through the top-down path every FPN level formally sees c5's 196-px field plus the 3x3s
        (>= 228 px, the whole crop at 224 px), which says nothing about the scale a level's prototypes
        respond to. include_top_down=True gives that full theoretical field instead.
        """
        if level not in self.levels:
            raise ValueError(f"level must be one of {self.levels}, got {level}")
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        bounds: list[tuple[int, int]] = []
        for cell, size in ((j, w), (i, h)):
            sizes = {lv: self.backbone.tap_size(lv, size) for lv in BACKBONE_LEVELS}
            if not 0 <= cell < sizes[level]:
                raise ValueError(f"cell index {cell} is outside the {sizes[level]}-cell grid of level {level}")
            spans = self.neck.source_spans(level, Span(cell, cell), sizes, include_top_down)
            pixels = [self.backbone.input_span(lv, s) for lv, s in spans.items()]
            lo = min(p.lo for p in pixels)
            hi = max(p.hi for p in pixels)
            bounds.append((max(lo, 0), min(hi + 1, size)))
        (x0, x1), (y0, y1) = bounds
        return x0, y0, x1, y1
