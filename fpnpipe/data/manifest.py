"""The generic manifest CSV importer: one row per lesion (or per lesion-free "normal" image).

Columns (names matched after stripping and lower-casing; UTF-8, a byte-order mark is tolerated):

    image_path      the image, relative to the manifest's folder (absolute allowed)       required
    patient_id      patients never straddle splits                                          required
    label           raw label, mapped through data.label_map (case-insensitive keys)       required
    roi_mask_path | x0,y0,x1,y1 | cx,cy,radius
                    exactly one lesion annotation form per lesion row, in source-image
                    pixels (x = column, y = row); the header needs at least one form
    fine_mask_path  optional fine annotation of the margin
    split           optional train / val / test
    image_id        optional; else the image path relative to the manifest, without suffix

Missing values are empty, NA or N/A (any case). Coordinates must be finite numbers no larger than
MAX_COORDINATE (a million pixels, beyond any image), so that no later arithmetic can overflow. File-level
problems (not UTF-8, a NUL byte, malformed CSV) raise ManifestError naming the file and the line; a bad row
becomes a Rejection with its 1-based data-row number and every problem found on it, and the other rows
go on. A normal row that carries an annotation is rejected, not silently stripped: the contradiction
usually means a wrong label. Checks that need pixels (box inside the image, mask size) are left to
preprocessing. Other columns are ignored (with one log line naming them).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fpnpipe.classes import MARGIN_CLASSES, NORMAL_LABEL
from fpnpipe.data.files import file_problem
from fpnpipe.data.records import LesionRow, Rejection
from fpnpipe.data.schema import SPLITS
from fpnpipe.reasons import private

log = logging.getLogger(__name__)

MISSING_VALUES: frozenset[str] = frozenset({"", "na", "n/a"})
"""Cell texts (stripped, lower-cased) that mean "no value"."""

REQUIRED_COLUMNS: tuple[str, ...] = ("image_path", "patient_id", "label")
ANNOTATION_FORMS: dict[str, tuple[str, ...]] = {
    "roi_mask_path": ("roi_mask_path",),
    "box": ("x0", "y0", "x1", "y1"),
    "circle": ("cx", "cy", "radius"),
}
OPTIONAL_COLUMNS: tuple[str, ...] = ("fine_mask_path", "split", "image_id")
KNOWN_COLUMNS: frozenset[str] = frozenset(
    REQUIRED_COLUMNS + OPTIONAL_COLUMNS + tuple(c for cols in ANNOTATION_FORMS.values() for c in cols)
)

MAX_COORDINATE = 1e6
"""Largest coordinate or radius accepted, in pixels: a DICOM image has at most 65535 rows and columns, so a
larger value is a typo or garbage (1e300 would overflow when the crop box is built)."""

# Each coordinate column: (rule its value must satisfy, how to say it failed).
_NUMBER_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "x0": (lambda v: v >= 0, "must not be negative"),
    "y0": (lambda v: v >= 0, "must not be negative"),
    "x1": (lambda v: v >= 0, "must not be negative"),
    "y1": (lambda v: v >= 0, "must not be negative"),
    "cx": (lambda v: v >= 0, "must not be negative"),
    "cy": (lambda v: v >= 0, "must not be negative"),
    "radius": (lambda v: v > 0, "must be positive"),
}
# (lower, upper): upper must be strictly greater than lower.
_ORDER_RULES: tuple[tuple[str, str], ...] = (("x0", "x1"), ("y0", "y1"))


class ManifestError(ValueError):
    """A manifest file that cannot be read at all; the message names the file and the column or line."""


def is_missing(text: str | None) -> bool:
    """True for None, empty, NA and N/A (any case, surrounding spaces ignored)."""
    return text is None or text.strip().lower() in MISSING_VALUES


def normalise_label_map(label_map: Mapping[str, str]) -> dict[str, str]:
    """label_map with keys stripped and lower-cased; raises ValueError for a target that is not a class."""
    allowed = (*MARGIN_CLASSES, NORMAL_LABEL)
    out: dict[str, str] = {}
    for raw, target in label_map.items():
        if target not in allowed:
            raise ValueError(f"data.label_map[{raw!r}] = {target!r}; targets must be one of {', '.join(allowed)}")
        out[raw.strip().lower()] = target
    return out


def map_label(raw: str | None, label_map: Mapping[str, str]) -> str | None:
    """The class for a raw label through a normalised label map, or None when it is missing or unknown."""
    if raw is None or is_missing(raw):
        return None
    return label_map.get(raw.strip().lower())


def unknown_label_reason(raw: str | None, label_map: Mapping[str, str], column: str = "label") -> str:
    """The rejection reason for a label that `map_label` could not map."""
    if raw is None or is_missing(raw):
        return f"{column} is missing (empty or NA), which is not in data.label_map"
    keys = ", ".join(sorted(label_map)) or "none"
    return f"{column} {raw.strip()!r} is not in data.label_map (its keys: {keys})"


def resolve_path(text: str, folder: Path) -> Path:
    """Absolute, normalised path of `text` taken relative to `folder` (absolute `text` stays as given)."""
    return Path(os.path.abspath(folder / text.strip()))


@dataclass
class _Seen:
    """What earlier rows established, to catch duplicates and contradictions across rows."""

    raw_rows: dict[tuple[str, ...], int] = field(default_factory=dict)
    """Raw fields -> row number (exact duplicates)."""
    annotations: dict[tuple[object, ...], int] = field(default_factory=dict)
    """(image, ROI mask, box, circle) -> row number (the same lesion twice, whatever its label)."""
    image_ids: dict[str, tuple[Path, int]] = field(default_factory=dict)
    """image_id -> (image path, row number)."""
    images: dict[Path, tuple[str, bool, int]] = field(default_factory=dict)
    """image path -> (patient_id, is normal, row number)."""


@dataclass(frozen=True)
class _Header:
    path: Path
    columns: tuple[str, ...]
    forms: dict[str, tuple[str, ...]]
    """The annotation forms whose columns are all in the header."""

    @property
    def folder(self) -> Path:
        return Path(os.path.abspath(self.path.parent))


def _read_header(path: Path, header: list[str]) -> _Header:
    columns = tuple(name.strip().lower() for name in header)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ManifestError(f"{path}: column {', '.join(repeated)} appears more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        hint = " (the file must be comma-separated)" if any(sep in "".join(header) for sep in ";\t|") else ""
        raise ManifestError(f"{path}: required column {', '.join(missing)} is missing{hint}; header: {list(header)}")
    forms = {}
    for name, cols in ANNOTATION_FORMS.items():
        have = [c for c in cols if c in columns]
        if have and len(have) < len(cols):
            lacking = [c for c in cols if c not in columns]
            raise ManifestError(
                f"{path}: column {', '.join(lacking)} is missing; the {name} annotation needs {', '.join(cols)}"
            )
        if have:
            forms[name] = cols
    if not forms:
        raise ManifestError(
            f"{path}: no annotation column; give roi_mask_path, or x0,y0,x1,y1, or cx,cy,radius"
        )
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    if unknown:
        log.info("%s: ignoring columns %s", path, ", ".join(unknown))
    return _Header(path=path, columns=columns, forms=forms)


def _number(column: str, text: str, problems: list[str]) -> float | None:
    """The finite number `text` of `column` if it satisfies the column's rule, else None (problem appended)."""
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{column} {text!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{column} {text!r} is not a finite number")
        return None
    if abs(value) > MAX_COORDINATE:
        problems.append(f"{column} = {text} is beyond {MAX_COORDINATE:.0f} pixels, larger than any image")
        return None
    rule, wording = _NUMBER_RULES[column]
    if not rule(value):
        problems.append(f"{column} = {text} {wording}")
        return None
    return value


def _coordinates(cells: Mapping[str, str | None], form: str, problems: list[str]) -> tuple[float, ...] | None:
    """The numbers of a box or circle form, checked; None (problems appended) if any is bad."""
    cols = ANNOTATION_FORMS[form]
    texts = {c: cells[c] for c in cols}
    empty = [c for c, text in texts.items() if text is None]
    if empty:
        problems.append(f"{form} is incomplete: {', '.join(empty)} empty (a {form} needs {', '.join(cols)})")
        return None
    parsed = {c: _number(c, str(text), problems) for c, text in texts.items()}
    values = {c: v for c, v in parsed.items() if v is not None}
    if len(values) != len(parsed):
        return None
    ordered = True
    for lower, upper in _ORDER_RULES:
        if lower in values and values[upper] <= values[lower]:
            problems.append(f"{upper} ({cells[upper]}) must be greater than {lower} ({cells[lower]})")
            ordered = False
    return tuple(values[c] for c in cols) if ordered else None


def _existing_file(text: str, folder: Path, what: str, problems: list[str]) -> Path | None:
    path = resolve_path(text, folder)
    problem = file_problem(path)
    if problem is not None:
        problems.append(f"{what} {problem}: {private(path)}")
        return None
    return path


def _image_id(cells: Mapping[str, str | None], image: Path, folder: Path) -> str:
    given = cells.get("image_id")
    if given is not None:
        return given
    try:
        return image.relative_to(folder).with_suffix("").as_posix()
    except ValueError:  # outside the manifest's folder
        return image.with_suffix("").as_posix().lstrip("/")


def _annotation(
    cells: Mapping[str, str | None], label: str, header: _Header, problems: list[str]
) -> dict[str, object]:
    """LesionRow keyword arguments for the row's one annotation form and fine mask (empty for a normal row)."""
    given = [name for name, cols in header.forms.items() if any(cells[c] is not None for c in cols)]
    fine = cells.get("fine_mask_path")
    if label == NORMAL_LABEL:
        if given or fine is not None:
            named = ", ".join(given + (["fine_mask_path"] if fine is not None else []))
            problems.append(f"normal row (no lesion) carries an annotation ({named}); remove it or correct the label")
        return {}
    if not given:
        problems.append(f"lesion row (label {label}) has no annotation: give roi_mask_path, x0..y1 or cx,cy,radius")
        return {}
    if len(given) > 1:
        problems.append(f"row has {len(given)} annotation forms ({', '.join(given)}); give exactly one")
        return {}
    form = given[0]
    kwargs: dict[str, object] = {}
    if form == "roi_mask_path":
        kwargs[form] = _existing_file(str(cells[form]), header.folder, "ROI mask file", problems)
    else:
        kwargs[form] = _coordinates(cells, form, problems)
    if fine is not None:
        kwargs["fine_mask_path"] = _existing_file(fine, header.folder, "fine mask file", problems)
    return kwargs


def _parse_row(
    cells: Mapping[str, str | None], number: int, header: _Header, label_map: Mapping[str, str]
) -> tuple[LesionRow | None, list[str]]:
    """A LesionRow, or None and every problem found on the row."""
    problems: list[str] = []
    image = None
    if cells["image_path"] is None:
        problems.append("image_path is empty")
    else:
        image = _existing_file(cells["image_path"], header.folder, "image file", problems)
    if cells["patient_id"] is None:
        problems.append("patient_id is empty")
    label = map_label(cells["label"], label_map)
    if label is None:
        problems.append(unknown_label_reason(cells["label"], label_map))
    split = cells.get("split")
    if split is not None:
        split = split.lower()
        if split not in SPLITS:
            problems.append(f"split {cells['split']!r} is not one of {', '.join(SPLITS)}")
    annotation = _annotation(cells, label, header, problems) if label is not None else {}
    if problems or image is None or label is None:
        return None, problems
    row = LesionRow(
        source=str(header.path),
        row=number,
        image_path=image,
        image_id=_image_id(cells, image, header.folder),
        patient_id=str(cells["patient_id"]),
        label=label,
        split=split,
        **annotation,  # type: ignore[arg-type]
    )
    return row, []


def _annotation_key(row: LesionRow) -> tuple[object, ...]:
    return (row.image_path, row.roi_mask_path, row.box, row.circle)


def _conflicts(row: LesionRow, seen: _Seen) -> list[str]:
    """Problems of an otherwise valid row against the rows accepted before it."""
    problems = []
    if _annotation_key(row) in seen.annotations:
        problems.append(f"repeats the image and annotation of row {seen.annotations[_annotation_key(row)]}")
    if row.image_id in seen.image_ids:
        image, earlier = seen.image_ids[row.image_id]
        if image != row.image_path:
            problems.append(
                f"image_id {private(repr(row.image_id))} is already used by row {earlier} for {private(image)}")
    if row.image_path in seen.images:
        patient, normal, earlier = seen.images[row.image_path]
        if patient != row.patient_id:
            problems.append(f"the image is listed in row {earlier} with patient_id {private(repr(patient))}")
        if normal or row.label == NORMAL_LABEL:
            problems.append(f"the image is listed in row {earlier} too, and a normal image cannot have other rows")
    return problems


def _remember(row: LesionRow, seen: _Seen) -> None:
    seen.annotations[_annotation_key(row)] = row.row
    seen.image_ids.setdefault(row.image_id, (row.image_path, row.row))
    seen.images.setdefault(row.image_path, (row.patient_id, row.label == NORMAL_LABEL, row.row))


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of byte `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1


def _csv_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); ManifestError naming the file and the line when it
    is missing, not a file, not UTF-8, or holds a NUL byte (binary data, which no CSV text holds)."""
    problem = file_problem(path)
    if problem is not None:
        raise ManifestError(f"{path}: CSV file {problem}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the CSV file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: not a UTF-8 CSV text file (line {_line_of(data, exc.start)}, byte {exc.start}: {exc.reason})"
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise ManifestError(
            f"{path}: line {_line_of(data, nul)}: NUL byte at byte {nul}; not a CSV text file (binary data or a "
            "damaged export)"
        )
    return text


def read_csv_records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (1-based data-row number, fields) of every non-blank row of a UTF-8 CSV file.

    Raises ManifestError naming the file (and the line where one is to blame) when it is missing, empty,
    not UTF-8, holds a NUL byte, or is not parseable as CSV.
    """
    reader = csv.reader(io.StringIO(_csv_text(path), newline=""))
    try:
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(f"{path}: the file is empty (no header row)") from None
        records = [(i, fields) for i, fields in enumerate(reader, start=1) if any(x.strip() for x in fields)]
    except csv.Error as exc:
        raise ManifestError(f"{path}: not a readable CSV file (line {reader.line_num}: {exc})") from None
    return header, records


def read_manifest(path: Path, label_map: Mapping[str, str]) -> tuple[list[LesionRow], list[Rejection]]:
    """Rows of a generic manifest CSV, and a Rejection per refused row (row = 1-based data row).

    Raises ManifestError (naming the file and the column) when the file cannot be used at all.
    """
    path = Path(path)
    labels = normalise_label_map(label_map)
    fields, records = read_csv_records(path)
    header = _read_header(path, fields)
    rows: list[LesionRow] = []
    rejections: list[Rejection] = []
    seen = _Seen()
    image_column = header.columns.index("image_path")
    for number, values in records:
        row, problems = _check_record(values, number, header, labels, seen)
        if row is None:
            image = values[image_column].strip() if image_column < len(values) else ""
            rejections.append(Rejection(str(path), number, "; ".join(problems),
                                        image=private(image) if image else None))
        else:
            _remember(row, seen)
            rows.append(row)
    return rows, rejections


def _check_record(
    values: list[str], number: int, header: _Header, labels: Mapping[str, str], seen: _Seen
) -> tuple[LesionRow | None, list[str]]:
    """One CSV record through every check: field count, exact duplicate, cell checks, cross-row conflicts."""
    if len(values) != len(header.columns):
        return None, [f"row has {len(values)} fields, the header has {len(header.columns)}"]
    raw = tuple(values)
    if raw in seen.raw_rows:
        return None, [f"exact duplicate of row {seen.raw_rows[raw]}"]
    seen.raw_rows[raw] = number
    cells = {c: (None if is_missing(v) else v.strip()) for c, v in zip(header.columns, values, strict=True)}
    row, problems = _parse_row(cells, number, header, labels)
    if row is not None:
        problems = _conflicts(row, seen)
    return (None, problems) if problems else (row, [])
