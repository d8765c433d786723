"""The class list shared by every artifact, model and report (DESIGN.md, "Classes")."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("circumscribed", "indistinct", "spiculated", "negative")
"""Class names in index order; ``label`` arrays index into this tuple."""

MARGIN_CLASSES: tuple[str, ...] = CLASSES[:3]
"""The three margin classes whose one-vs-rest AUROCs are averaged (paper Table 1)."""

NEGATIVE: str = "negative"
NEGATIVE_INDEX: int = CLASSES.index(NEGATIVE)

NORMAL_LABEL: str = "normal"
"""Label of an image without a lesion in a manifest. Such images give no crop; they feed `negatives`."""

FPN_LEVELS: tuple[int, ...] = (2, 3, 4, 5)
"""FPN levels of the pyramid, finest (2) to coarsest (5), paper Section 3.1."""

FPN_STRIDES: dict[int, int] = {2: 4, 3: 8, 4: 16, 5: 16}
"""Crop pixels per map cell at each level for the VGG-16 taps (c2, c3, c4 = max-pool outputs of blocks 2-4;
c5 = the last conv block without its max-pool), so a level's map is crop.size / stride cells per side."""


def class_index(name: str) -> int:
    """Index of a class name; raises ValueError naming the valid classes."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASSES)}") from None
