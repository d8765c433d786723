"""What importers hand to preprocessing: one LesionRow per accepted manifest row, one Rejection per refused row.

Every importer (generic manifest CSV, CBIS-DDSM, the synthetic set's manifest) produces these, so the
preprocessing code never needs to know where the rows came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpnpipe.reasons import is_private, reveal, stable_reason, withhold

Box = tuple[float, float, float, float]
"""[x0, y0, x1, y1] in source-image pixel coordinates (x = column, y = row), x1 > x0, y1 > y0."""

Circle = tuple[float, float, float]
"""[cx, cy, radius] in source-image pixel coordinates."""


@dataclass(frozen=True)
class LesionRow:
    """One row of a manifest after validation: an image and (unless `label` is "normal") one lesion on it.

    `label` is already mapped to a class name (circumscribed / indistinct / spiculated) or "normal".
    A lesion row has exactly one of `roi_mask_path`, `box`, `circle`; a normal row has none.
    Paths are absolute. `source` and `row` locate the row for messages (row = 1-based data row).
    """

    source: str
    row: int
    image_path: Path
    image_id: str
    patient_id: str
    label: str
    roi_mask_path: Path | None = None
    box: Box | None = None
    circle: Circle | None = None
    fine_mask_path: Path | None = None
    split: str | None = None

    @property
    def where(self) -> str:
        """'manifest.csv row 12' style locator for messages."""
        return f"{self.source} row {self.row}"


@dataclass(frozen=True)
class Rejection:
    """A row that was not used, and why. Reported in reports/preprocess.json; never fatal unless --strict.
    The reason is made byte-stable (one line, no memory addresses) so the report is too."""

    source: str
    row: int | None
    reason: str
    image: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", stable_reason(self.reason, limit=2000))

    def to_json(self, public: bool = False) -> dict[str, object]:
        """The report entry. public=True (pseudonymisation on): quoted paths and identifiers withheld, and
        the image given only if it is a pseudonym (rows rejected by the importer give none)."""
        if public:
            image = None if self.image is None or is_private(self.image) else self.image
            return {"source": self.source, "row": self.row, "image": image, "reason": withhold(self.reason)}
        image = None if self.image is None else reveal(self.image)
        return {"source": self.source, "row": self.row, "image": image, "reason": reveal(self.reason)}

    @property
    def text(self) -> str:
        """The reason in full, quoted paths and identifiers shown."""
        return reveal(self.reason)

    def describe(self) -> str:
        """'source row N (image): reason' in full, for the local log."""
        image = f" ({reveal(self.image)})" if self.image else ""
        return f"{self.source} row {self.row}{image}: {reveal(self.reason)}"
