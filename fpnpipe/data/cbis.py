"""CBIS-DDSM importer: the official mass case-description CSVs plus the TCIA download folder.

Facts relied on (see the project's reference notes on data sources):
- the CSV header is fixed (CBIS_COLUMNS); missing values read NA or N/A;
- path columns read `<case folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>.dcm`, the ROI mask path
  with a trailing newline; the ROI mask and the cropped image live under `<case folder>_<abnormality id>`;
- TCIA's downloader writes `<case folder>/<date...-NNNNN>/<series...-NNNNN>/1-1.dcm`, where the date
  folder ends in the last 5 digits of the StudyInstanceUID and the series folder in those of the
  SeriesInstanceUID; a cropped image and its ROI mask may share one series, in either file order.

Each CSV path is looked up first as written under image_root, then in the TCIA layout (the tree is walked
once per call). The ROI mask is told from the cropped image by its header: of the files in the mask's and
the crop's series, the one with the most pixels (the mask is full-mammogram sized, the crop small).
Mass-Test rows get split "test"; Mass-Training rows get no split, so validation is carved from training
by patient later. Margins go through data.label_map; rows whose margin does not map (OBSCURED,
MICROLOBULATED, combinations, missing) are rejected, and `label_counts` gives that accounting per set.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fpnpipe.classes import MARGIN_CLASSES, NORMAL_LABEL
from fpnpipe.data.images import ImageReadError, image_shape
from fpnpipe.data.manifest import (
    ManifestError,
    is_missing,
    map_label,
    normalise_label_map,
    read_csv_records,
    unknown_label_reason,
)
from fpnpipe.data.records import LesionRow, Rejection
from fpnpipe.reasons import private

CBIS_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "mass shape",
    "mass margins",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
)
SETS: dict[str, str] = {"Mass-Training": "train", "Mass-Test": "test"}
"""Case-folder prefix -> official set."""
SPLIT_OF_SET: dict[str, str | None] = {"train": None, "test": "test"}
UID_TAIL_DIGITS = 5
LABEL_COLUMN = "label (mass margins)"


@dataclass(frozen=True)
class DicomRef:
    """A CSV path column: `<folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>`."""

    relative: str
    folder: str
    study_uid: str
    series_uid: str

    @staticmethod
    def parse(text: str) -> DicomRef:
        """Raises ValueError (with the column-free reason) when `text` does not have the four parts."""
        relative = text.strip().replace("\\", "/")
        parts = relative.split("/")
        if len(parts) != 4 or not all(parts):
            raise ValueError(
                f"{private(repr(relative))} is not <case folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>"
            )
        return DicomRef(relative=relative, folder=parts[0], study_uid=parts[1], series_uid=parts[2])


@dataclass(frozen=True)
class CbisCase:
    """One CSV row, checked for form but not yet resolved to files. `margin` is the raw mass-margins text
    (None if missing), `label` its class through the label map (None if it does not map)."""

    source: str
    row: int
    set_name: str
    patient_id: str
    margin: str | None
    label: str | None
    image: DicomRef
    crop: DicomRef
    roi: DicomRef


@dataclass(frozen=True)
class LabelCounts:
    """Rows of one official set: per class, those whose margin maps to it; per raw margin, those dropped."""

    kept: dict[str, int]
    dropped: dict[str, int]


def _uid_tail(uid: str) -> str:
    """The last UID_TAIL_DIGITS digits of a UID (dots skipped): what TCIA folder names end in."""
    return "".join(ch for ch in uid if ch.isdigit())[-UID_TAIL_DIGITS:]


def _folder_tail(name: str) -> int | None:
    """The number a TCIA folder name ends in (compared as a number, so dropped leading zeros still match)."""
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)[-UID_TAIL_DIGITS:]) if match else None


def _ref_key(ref: DicomRef) -> tuple[str, int | None, int | None]:
    study, series = _uid_tail(ref.study_uid), _uid_tail(ref.series_uid)
    return ref.folder, int(study) if study else None, int(series) if series else None


class _Unresolved(Exception):
    """A case whose files cannot be found or told apart; the message is the rejection reason."""


class TciaIndex:
    """Every series folder under image_root (`<case>/<date>/<series>/*.dcm`), found in one directory walk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._series: dict[tuple[str, int | None, int | None], list[Path]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            parts = Path(dirpath).relative_to(root).parts
            dirnames.sort()
            if len(parts) >= 3:
                dirnames[:] = []  # series folders hold the files; nothing deeper belongs to the layout
            dicoms = sorted(Path(dirpath) / name for name in filenames if name.lower().endswith(".dcm"))
            if len(parts) == 3 and dicoms:
                key = (parts[0], _folder_tail(parts[1]), _folder_tail(parts[2]))
                self._series.setdefault(key, []).extend(dicoms)

    def files(self, ref: DicomRef) -> list[Path]:
        """DICOM files of the series `ref` names, in the TCIA layout (empty if absent)."""
        return list(self._series.get(_ref_key(ref), []))

    def pattern(self, ref: DicomRef) -> str:
        """The TCIA location looked at for `ref`, for messages."""
        return f"{self.root / ref.folder}/*-{_uid_tail(ref.study_uid)}/*-{_uid_tail(ref.series_uid)}/*.dcm"


def _check_header(path: Path, header: Sequence[str]) -> None:
    """Raise ManifestError naming every official column the header lacks."""
    names = [h.strip() for h in header]
    missing = [c for c in CBIS_COLUMNS if c not in names]
    if missing:
        hint = " (this looks like a calcification CSV; mass CSVs are expected)" if "breast density" in names else ""
        raise ManifestError(
            f"{path}: column {', '.join(repr(c) for c in missing)} is missing; not a CBIS-DDSM mass "
            f"case-description CSV{hint}"
        )


def _parse_case(
    source: str, number: int, cells: Mapping[str, str | None], labels: Mapping[str, str]
) -> tuple[CbisCase | None, list[str]]:
    """The row as a CbisCase (label None if unmapped), or None and its form problems."""
    problems: list[str] = []
    refs: dict[str, DicomRef] = {}
    for column in ("image file path", "cropped image file path", "ROI mask file path"):
        text = cells[column]
        if text is None:
            problems.append(f"{column} is missing")
            continue
        try:
            refs[column] = DicomRef.parse(text)
        except ValueError as exc:
            problems.append(f"{column} {exc}")
    if cells["patient_id"] is None:
        problems.append("patient_id is missing")
    if (cells["abnormality type"] or "").lower() != "mass":
        problems.append(f"abnormality type {cells['abnormality type']!r} is not 'mass'")
    set_name = None
    if "image file path" in refs:
        prefix = refs["image file path"].folder.split("_", 1)[0]
        set_name = SETS.get(prefix)
        if set_name is None:
            folder = private(repr(refs["image file path"].folder))
            problems.append(f"case folder {folder} is not a {' / '.join(SETS)} case")
    if problems or set_name is None:
        return None, problems
    return (
        CbisCase(
            source=source,
            row=number,
            set_name=set_name,
            patient_id=str(cells["patient_id"]),
            margin=cells["mass margins"],
            label=map_label(cells["mass margins"], labels),
            image=refs["image file path"],
            crop=refs["cropped image file path"],
            roi=refs["ROI mask file path"],
        ),
        [],
    )


def _read_cases(path: Path, labels: Mapping[str, str]) -> tuple[list[CbisCase], list[Rejection]]:
    """Every row of one CSV as a CbisCase, or a Rejection for rows malformed in themselves."""
    header, records = read_csv_records(path)
    _check_header(path, header)
    columns = [h.strip() for h in header]
    cases: list[CbisCase] = []
    rejections: list[Rejection] = []
    seen: dict[tuple[str, ...], int] = {}
    for number, values in records:
        if len(values) != len(columns):
            problems = [f"row has {len(values)} fields, the header has {len(columns)}"]
        elif tuple(values) in seen:
            problems = [f"exact duplicate of row {seen[tuple(values)]}"]
        else:
            seen[tuple(values)] = number
            cells = {c: (None if is_missing(v) else v.strip()) for c, v in zip(columns, values, strict=True)}
            case, problems = _parse_case(str(path), number, cells, labels)
            if case is not None:
                cases.append(case)
        if problems:
            rejections.append(Rejection(str(path), number, "; ".join(problems)))
    return cases, rejections


def _candidates(ref: DicomRef, root: Path, index: TciaIndex) -> list[Path]:
    """Files for `ref`: the CSV path under root if it exists, else the TCIA series' files."""
    direct = root / ref.relative
    return [direct] if direct.is_file() else index.files(ref)


def _largest(files: Sequence[Path]) -> Path:
    """The file with the most pixels, from headers only (first in path order on ties)."""
    best: tuple[int, Path] | None = None
    for path in sorted(files):
        try:
            rows, cols = image_shape(path)
        except ImageReadError as exc:
            raise _Unresolved(f"cannot read the header of {private(path)}: {exc.reason}") from None
        if best is None or rows * cols > best[0]:
            best = (rows * cols, path)
    if best is None:
        raise _Unresolved("no candidate files")
    return best[1]


def _resolve(case: CbisCase, root: Path, index: TciaIndex) -> tuple[Path, Path]:
    """(full mammogram, ROI mask) of a case; raises _Unresolved naming what was tried."""

    def tried(ref: DicomRef) -> str:
        return f"tried {private(root / ref.relative)} and {private(index.pattern(ref))}"

    image_files = _candidates(case.image, root, index)
    if not image_files:
        raise _Unresolved(f"full mammogram not found: {tried(case.image)}")
    roi_files = _candidates(case.roi, root, index)
    if not roi_files:
        raise _Unresolved(f"ROI mask not found: {tried(case.roi)}")
    files = sorted(set(roi_files) | set(_candidates(case.crop, root, index)))
    if case.roi.series_uid == case.crop.series_uid and len(files) < 2:
        raise _Unresolved(
            f"the ROI mask and the cropped image share series {private(case.roi.series_uid)} but only "
            f"{private(files[0])} "
            "was found, so the mask cannot be told from the crop"
        )
    image = image_files[0] if len(image_files) == 1 else _largest(image_files)
    return image, _largest(files)


def _row(case: CbisCase, image: Path, roi: Path) -> LesionRow:
    return LesionRow(
        source=case.source,
        row=case.row,
        image_path=image,
        image_id=case.image.folder,
        patient_id=case.patient_id,
        label=str(case.label),
        roi_mask_path=roi,
        split=SPLIT_OF_SET[case.set_name],
    )


def _accept(case: CbisCase, labels: Mapping[str, str], seen: dict[str, str], root: Path, index: TciaIndex) -> LesionRow:
    """The LesionRow of a well-formed case; raises _Unresolved with the reason it is refused."""
    if case.label is None:
        raise _Unresolved(unknown_label_reason(case.margin, labels, column=LABEL_COLUMN))
    if case.label == NORMAL_LABEL:
        raise _Unresolved(f"{LABEL_COLUMN} {case.margin!r} maps to {NORMAL_LABEL}, but every mass row has a lesion")
    if case.roi.folder in seen:
        raise _Unresolved(f"abnormality {private(case.roi.folder)} is already listed at {seen[case.roi.folder]}")
    seen[case.roi.folder] = f"{case.source} row {case.row}"
    image, roi = _resolve(case, root, index)
    return _row(case, image, roi)


def read_cbis(
    csv_paths: Sequence[Path], image_root: Path, label_map: Mapping[str, str]
) -> tuple[list[LesionRow], list[Rejection]]:
    """Rows of the CBIS-DDSM mass CSVs resolved to files under `image_root`, and a Rejection per refused
    row (malformed, margin not in data.label_map, duplicate abnormality, files not found or ambiguous).

    Raises ManifestError for a missing / malformed CSV or a missing image_root.
    """
    image_root = Path(os.path.abspath(image_root))
    labels = normalise_label_map(label_map)
    parsed = [_read_cases(Path(p), labels) for p in csv_paths]
    if not image_root.is_dir():
        raise ManifestError(f"{image_root}: CBIS-DDSM image folder not found (data.cbis.image_root)")
    index = TciaIndex(image_root)
    rows: list[LesionRow] = []
    rejections: list[Rejection] = []
    abnormalities: dict[str, str] = {}  # ROI folder (<case>_<abnormality id>) -> where first listed
    for cases, malformed in parsed:
        refused = list(malformed)
        for case in cases:
            try:
                rows.append(_accept(case, labels, abnormalities, image_root, index))
            except _Unresolved as exc:
                refused.append(Rejection(case.source, case.row, str(exc), image=private(case.image.relative)))
        rejections.extend(sorted(refused, key=lambda r: r.row or 0))
    return rows, rejections


def label_counts(csv_paths: Sequence[Path], label_map: Mapping[str, str]) -> dict[str, LabelCounts]:
    """Per official set ("train", "test"): how many rows each margin class keeps and which raw margins are
    dropped because they are not in data.label_map (missing margins count as "NA"). Needs no images."""
    labels = normalise_label_map(label_map)
    kept: dict[str, Counter[str]] = {}
    dropped: dict[str, Counter[str]] = {}
    for path in csv_paths:
        for case in _read_cases(Path(path), labels)[0]:
            if case.label in MARGIN_CLASSES:
                kept.setdefault(case.set_name, Counter())[str(case.label)] += 1
            else:
                dropped.setdefault(case.set_name, Counter())[case.margin or "NA"] += 1
    return {
        name: LabelCounts(
            kept={c: kept.get(name, Counter())[c] for c in MARGIN_CLASSES},
            dropped=dict(sorted(dropped.get(name, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for name in SETS.values()
        if name in kept or name in dropped
    }
