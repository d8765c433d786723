"""Params of the data half of the pipeline: synth, data, crop, split, preprocess, negatives."""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from fpnpipe.classes import MARGIN_CLASSES, NORMAL_LABEL
from fpnpipe.config.base import Section

FloatRange = tuple[float, float]
IntRange = tuple[int, int]


def check_range(value: tuple, name: str = "range") -> tuple:
    """Validate a (low, high) pair: low <= high."""
    if value[0] > value[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(value)}")
    return value


class SynthClassWeights(Section):
    """Relative frequency of each kind of synthetic image (normal = no lesion)."""

    circumscribed: float = Field(1.0, ge=0)
    indistinct: float = Field(1.0, ge=0)
    spiculated: float = Field(1.0, ge=0)
    normal: float = Field(0.3, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> SynthClassWeights:
        if self.circumscribed + self.indistinct + self.spiculated + self.normal <= 0:
            raise ValueError("at least one class weight must be positive")
        return self


class SynthParams(Section):
    """The built-in synthetic mammography phantom dataset (real DICOM files + generic manifest).

    Ranges are [low, high] pairs from which each image or lesion draws its value; `difficulty` in [0, 1]
    skews the lesion and density draws from the easy end (0) to the hard end (1); 0.5 draws uniformly.
    """

    out_dir: str = Field("data/raw/synthetic", min_length=1)
    n_patients: int = Field(240, ge=1, le=1_000_000)
    views_per_patient: IntRange = (1, 2)
    image_shape: IntRange = (640, 512)
    pixel_spacing_mm: float = Field(0.2, gt=0, le=10)
    class_weights: SynthClassWeights = SynthClassWeights()
    monochrome1_fraction: float = Field(0.2, ge=0, le=1)
    lesion_radius_px: FloatRange = (14.0, 34.0)
    lesion_contrast: FloatRange = (0.05, 0.12)
    background_beta: FloatRange = (2.7, 3.4)
    blur_sigma_px: FloatRange = (0.5, 1.0)
    noise: float = Field(0.01, ge=0, le=1)
    difficulty: float = Field(0.4, ge=0, le=1)

    @field_validator("views_per_patient", "lesion_radius_px", "lesion_contrast", "background_beta", "blur_sigma_px")
    @classmethod
    def _ordered(cls, v: tuple) -> tuple:
        return check_range(v)

    @field_validator("views_per_patient")
    @classmethod
    def _views(cls, v: IntRange) -> IntRange:
        return cls._within(v, 1, 16, "views per patient")

    @field_validator("image_shape")
    @classmethod
    def _shape(cls, v: IntRange) -> IntRange:
        return cls._within(v, 128, 8192, "image side (pixels)")

    @field_validator("lesion_radius_px")
    @classmethod
    def _radius(cls, v: FloatRange, info: ValidationInfo) -> FloatRange:
        cls._within(v, 2.0, 1000.0, "lesion radius (pixels)")
        shape = info.data.get("image_shape")
        # A spiculated lesion reaches about 4 radii from its centre and must fit inside the breast.
        if shape is not None and v[1] * 10 > min(shape):
            raise ValueError(
                f"the high end {v[1]:g} is too large for image_shape {list(shape)}: "
                "it must be at most a tenth of the shorter image side"
            )
        return v

    @field_validator("lesion_contrast")
    @classmethod
    def _contrast(cls, v: FloatRange) -> FloatRange:
        if v[0] <= 0:
            raise ValueError(f"lesion contrast must be positive, got {list(v)}")
        return cls._within(v, 0.0, 0.5, "lesion contrast")

    @field_validator("background_beta")
    @classmethod
    def _beta(cls, v: FloatRange) -> FloatRange:
        return cls._within(v, 1.0, 5.0, "power-law exponent beta")

    @field_validator("blur_sigma_px")
    @classmethod
    def _blur(cls, v: FloatRange) -> FloatRange:
        return cls._within(v, 0.0, 10.0, "blur sigma (pixels)")

    @staticmethod
    def _within(v: tuple, low: float, high: float, what: str) -> tuple:
        """Validate that both ends of a range lie in [low, high]."""
        if v[0] < low or v[1] > high:
            raise ValueError(f"{what} must lie in [{low:g}, {high:g}], got {list(v)}")
        return v


class CbisParams(Section):
    """CBIS-DDSM: the official mass CSVs and the TCIA download folder."""

    csv: tuple[str, ...] = (
        "data/raw/cbis-ddsm/mass_case_description_train_set.csv",
        "data/raw/cbis-ddsm/mass_case_description_test_set.csv",
    )
    image_root: str = "data/raw/cbis-ddsm/CBIS-DDSM"


DEFAULT_LABEL_MAP: dict[str, str] = {
    "circumscribed": "circumscribed",
    "indistinct": "indistinct",
    "ill_defined": "indistinct",
    "spiculated": "spiculated",
    "normal": NORMAL_LABEL,
}


class DataParams(Section):
    """Where the raw data are and how their labels map to the classes.

    pseudonymize: replace patient and image identifiers by keyed pseudonyms before anything is written
    (fpnpipe.data.pseudonym); null = by source: on for cbis and manifest, off for the synthetic set."""

    source: Literal["synthetic", "cbis", "manifest"] = "synthetic"
    raw_dir: str = "data/raw/synthetic"
    manifest: str = "data/raw/synthetic/manifest.csv"
    cbis: CbisParams = CbisParams()
    label_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LABEL_MAP))
    voi_window: bool = False
    intensity_percentiles: FloatRange = (0.5, 99.5)
    pseudonymize: bool | None = None

    @property
    def pseudonymized(self) -> bool:
        """Whether identifiers are pseudonymised: `pseudonymize`, or when null, all but the synthetic set."""
        return self.pseudonymize if self.pseudonymize is not None else self.source != "synthetic"

    @field_validator("label_map")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        allowed = (*MARGIN_CLASSES, NORMAL_LABEL)
        for raw, target in v.items():
            if target not in allowed:
                raise ValueError(f"label_map[{raw!r}] = {target!r}; targets must be one of {', '.join(allowed)}")
        lowered = [k.strip().lower() for k in v]
        if len(set(lowered)) != len(lowered):
            raise ValueError("label_map keys must be unique ignoring case and surrounding spaces")
        return v

    @field_validator("intensity_percentiles")
    @classmethod
    def _pct(cls, v: FloatRange) -> FloatRange:
        if not 0 <= v[0] < v[1] <= 100:
            raise ValueError(f"intensity_percentiles must satisfy 0 <= low < high <= 100, got {list(v)}")
        return v


class CropParams(Section):
    """Lesion crops: square box around the ROI, expanded by `context`, resized to `size`.

    min_image_fraction: a crop whose box lies less than this share inside the image (the rest is zero
    padding) is rejected. A lesion box inside the image gives at least about 0.66 even in a corner at
    context 1.6, so the default 0.5 refuses only annotations reaching far outside the image."""

    size: int = Field(96, ge=32, le=1024, multiple_of=16)
    context: float = Field(1.6, ge=1.0, le=10.0)
    margin_band_px: int = Field(4, ge=1, le=64)
    min_image_fraction: float = Field(0.5, ge=0, le=1)


class SplitParams(Section):
    """Patient-level train / val / test split; an explicit split column in the manifest wins."""

    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.25, ge=0, lt=1)

    @model_validator(mode="after")
    def _sum(self) -> SplitParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1 (something must remain to train on)")
        return self


class PreprocessParams(Section):
    """How preprocessing runs (not what it computes)."""

    jobs: int = Field(2, ge=1, le=256)
    strict: bool = False


class NegativesParams(Section):
    """Lesion-free tissue patches for the negative class (fpnpipe.data.negatives).

    ratio: negative patches per lesion crop, in each split. candidates: valid boxes compared per patch when
    matching it to its lesion-crop template; match false takes the first (side copied, nothing else
    matched). min_distance_px: gap kept from every lesion box, source pixels. skin_margin_px: patch centres
    lie at least this far inside the breast outline. max_attempts: boxes drawn per patch at most."""

    ratio: float = Field(2.0, gt=0, le=100)
    match: bool = True
    candidates: int = Field(24, ge=1, le=10_000)
    min_distance_px: float = Field(32.0, ge=0)
    skin_margin_px: int = Field(8, ge=0)
    max_attempts: int = Field(200, ge=1, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            old = sorted(k for k in ("per_normal_image", "per_lesion_image", "min_breast_fraction") if k in data)
            if old:
                raise ValueError(
                    f"{', '.join(old)}: replaced by negatives.ratio (patches per lesion crop, in each split) and "
                    "matching to the lesion crops' framing (README, 'Negative patches'); remove the key")
        return data

    @model_validator(mode="after")
    def _attempts(self) -> NegativesParams:
        if self.max_attempts < self.candidates:
            raise ValueError(f"max_attempts ({self.max_attempts}) must be at least candidates ({self.candidates})")
        return self


def _norm(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/"))


def raw_dir_problem(data: DataParams, synth: SynthParams) -> str | None:
    """Why data.raw_dir does not fit data.source, or None. DVC links preprocess and negatives (which depend
    on data.raw_dir) to the synth stage (whose output is synth.out_dir) by path: synth runs exactly when the
    two overlap. So the synthetic source needs raw_dir = synth.out_dir (and reads the manifest synth writes
    there); any other source needs a raw_dir apart from synth.out_dir, or `dvc repro` would build phantoms."""
    raw, out = _norm(data.raw_dir), _norm(synth.out_dir)
    if data.source == "synthetic":
        if raw != out:
            return (f"data.raw_dir {data.raw_dir!r} must be synth.out_dir {synth.out_dir!r} for data.source synthetic "
                    "(the folder the synth stage writes, so that DVC runs synth before preprocess)")
        if _norm(data.manifest) != posixpath.join(out, "manifest.csv"):
            return (f"data.manifest {data.manifest!r} must be {posixpath.join(out, 'manifest.csv')!r} for "
                    "data.source synthetic (the manifest the synth stage writes)")
        return None
    overlap = raw == out or out.startswith(raw.rstrip("/") + "/") or raw.startswith(out.rstrip("/") + "/")
    if overlap or raw == ".":
        return (f"data.raw_dir {data.raw_dir!r} overlaps synth.out_dir {synth.out_dir!r}: with data.source "
                f"{data.source} point it at the folder holding your data (e.g. data/raw/{data.source}), or DVC "
                "would build the synthetic phantoms for nothing")
    return None
