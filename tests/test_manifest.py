"""The generic manifest importer: accepted rows, every row-level refusal, file-level errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fpnpipe.config.data import DEFAULT_LABEL_MAP
from fpnpipe.data.manifest import ManifestError, read_manifest

HEADER = [
    "image_path", "patient_id", "label", "roi_mask_path", "x0", "y0", "x1", "y1",
    "cx", "cy", "radius", "fine_mask_path", "split",
]  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A manifest folder with three images, a mask and a fine mask (contents are never read here)."""
    for name in ("img/a.dcm", "img/b.dcm", "img/c.dcm", "masks/a.png", "masks/a_fine.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def write(folder: Path, rows: list[dict[str, str]], header: list[str] = HEADER, name: str = "m.csv") -> Path:
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(column, "") for column in header])
    return path


BOX = {"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "x0": "10", "y0": "20", "x1": "30",
       "y1": "45"}


def test_accepts_each_annotation_form(folder: Path) -> None:
    rows, rejections = read_manifest(
        write(
            folder,
            [
                {**BOX, "split": "Test", "fine_mask_path": "masks/a_fine.png"},
                {"image_path": "img/a.dcm", "patient_id": "P1", "label": " Ill_Defined ",
                 "roi_mask_path": "masks/a.png"},
                {"image_path": "img/b.dcm", "patient_id": "P2", "label": "CIRCUMSCRIBED", "cx": "5.5", "cy": "7",
                 "radius": "3"},
                {"image_path": "img/c.dcm", "patient_id": "P3", "label": "normal", "split": "NA"},
            ],
        ),
        DEFAULT_LABEL_MAP,
    )
    assert rejections == []
    box, roi, circle, normal = rows
    assert box.label == "spiculated" and box.box == (10.0, 20.0, 30.0, 45.0) and box.split == "test"
    assert box.fine_mask_path == folder / "masks" / "a_fine.png" and box.roi_mask_path is None
    assert box.image_path == folder / "img" / "a.dcm" and box.image_path.is_absolute()
    assert box.image_id == "img/a" and box.row == 1 and box.where == f"{folder / 'm.csv'} row 1"
    assert roi.label == "indistinct" and roi.roi_mask_path == folder / "masks" / "a.png" and roi.box is None
    assert circle.label == "circumscribed" and circle.circle == (5.5, 7.0, 3.0)
    assert normal.label == "normal" and normal.split is None and normal.box is normal.circle is None


# (row overrides or a whole row, substring of the reason). Each row is preceded by one valid row.
BAD_ROWS: list[tuple[dict[str, str], str]] = [
    ({**BOX, "image_path": "img/zzz.dcm"}, "image file not found"),
    ({**BOX, "image_path": ""}, "image_path is empty"),
    ({**BOX, "patient_id": ""}, "patient_id is empty"),
    ({**BOX, "patient_id": "N/A"}, "patient_id is empty"),
    ({**BOX, "label": "Obscured"}, "label 'Obscured' is not in data.label_map"),
    ({**BOX, "label": "NA"}, "label is missing"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated"}, "has no annotation"),
    ({**BOX, "roi_mask_path": "masks/a.png"}, "2 annotation forms (roi_mask_path, box)"),
    ({**BOX, "cx": "3", "cy": "3", "radius": "2"}, "2 annotation forms (box, circle)"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "roi_mask_path": "masks/no.png"},
     "ROI mask file not found"),
    ({**BOX, "fine_mask_path": "masks/none.png"}, "fine mask file not found"),
    ({**BOX, "x0": "ten"}, "x0 'ten' is not a number"),
    ({**BOX, "y1": "nan"}, "y1 'nan' is not a finite number"),
    ({**BOX, "x1": "inf"}, "x1 'inf' is not a finite number"),
    ({**BOX, "x0": "-Infinity"}, "x0 '-Infinity' is not a finite number"),
    ({**BOX, "x1": "1e400"}, "x1 '1e400' is not a finite number"),  # overflows to inf when parsed
    ({**BOX, "x1": "1e300"}, "x1 = 1e300 is beyond 1000000 pixels"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "cx": "4", "cy": "4", "radius": "1e300"},
     "radius = 1e300 is beyond 1000000 pixels"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "cx": "NaN", "cy": "4", "radius": "2"},
     "cx 'NaN' is not a finite number"),
    ({**BOX, "image_path": "img"}, "image file is a directory, not a file"),
    ({**BOX, "x1": "10"}, "x1 (10) must be greater than x0 (10)"),
    ({**BOX, "y1": "5"}, "y1 (5) must be greater than y0 (20)"),
    ({**BOX, "x0": "-1"}, "x0 = -1 must not be negative"),
    ({**BOX, "y1": ""}, "box is incomplete: y1 empty"),
    ({**BOX, "x0": "NA", "y0": ""}, "box is incomplete: x0, y0 empty"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "cx": "4", "cy": "4", "radius": "0"},
     "radius = 0 must be positive"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "cx": "4", "cy": "-4", "radius": "2"},
     "cy = -4 must not be negative"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "spiculated", "cx": "4", "cy": "4"},
     "circle is incomplete: radius empty"),
    ({**BOX, "split": "training"}, "split 'training' is not one of train, val, test"),
    ({**BOX, "label": "normal"}, "normal row (no lesion) carries an annotation (box)"),
    ({"image_path": "img/a.dcm", "patient_id": "P1", "label": "normal", "fine_mask_path": "masks/a_fine.png"},
     "carries an annotation (fine_mask_path)"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "words"), BAD_ROWS, ids=[w for _, w in BAD_ROWS])
def test_row_refusals(folder: Path, bad: dict[str, str], words: str) -> None:
    good = {"image_path": "img/b.dcm", "patient_id": "P2", "label": "circumscribed", "cx": "9", "cy": "9",
            "radius": "4"}
    path = write(folder, [good, bad, good | {"radius": "5"}])
    rows, rejections = read_manifest(path, DEFAULT_LABEL_MAP)
    assert [r.row for r in rows] == [1, 3]
    assert len(rejections) == 1
    assert rejections[0].row == 2 and rejections[0].source == str(path)
    assert words in rejections[0].reason


def test_all_problems_of_a_row_are_reported(folder: Path) -> None:
    path = write(folder, [{**BOX, "patient_id": "", "label": "odd", "image_path": "img/none.dcm"}])
    (rejection,) = read_manifest(path, DEFAULT_LABEL_MAP)[1]
    for words in ("image file not found", "patient_id is empty", "label 'odd'"):
        assert words in rejection.reason
    assert rejection.to_json()["image"] == "img/none.dcm"
    # A pseudonymised report names the row, never the file it quotes.
    public = rejection.to_json(public=True)
    assert public["image"] is None and "none.dcm" not in public["reason"] and "<withheld>" in public["reason"]


def test_exact_and_reformatted_duplicates(folder: Path) -> None:
    path = write(folder, [BOX, BOX, {**BOX, "x0": "10.0"}, {**BOX, "x0": "11"}, {**BOX, "label": "circumscribed"}])
    rows, rejections = read_manifest(path, DEFAULT_LABEL_MAP)
    assert [r.row for r in rows] == [1, 4]
    assert [(r.row, r.reason) for r in rejections] == [
        (2, "exact duplicate of row 1"),
        (3, "repeats the image and annotation of row 1"),
        (5, "repeats the image and annotation of row 1"),  # same lesion, contradicting label
    ]


def test_normal_image_cannot_also_have_lesions(folder: Path) -> None:
    normal = {"image_path": "img/a.dcm", "patient_id": "P1", "label": "normal"}
    rows, rejections = read_manifest(write(folder, [normal, BOX]), DEFAULT_LABEL_MAP)
    assert [r.row for r in rows] == [1]
    assert "a normal image cannot have other rows" in rejections[0].reason
    rows, rejections = read_manifest(write(folder, [BOX, normal]), DEFAULT_LABEL_MAP)
    assert [r.row for r in rows] == [1] and rejections[0].row == 2


def test_two_lesions_on_one_image_share_the_image_id(folder: Path) -> None:
    rows, rejections = read_manifest(write(folder, [BOX, {**BOX, "x0": "0", "label": "indistinct"}]), DEFAULT_LABEL_MAP)
    assert not rejections and rows[0].image_id == rows[1].image_id == "img/a"


def test_contradicting_rows(folder: Path) -> None:
    header = [*HEADER, "image_id"]
    rows, rejections = read_manifest(
        write(
            folder,
            [
                {**BOX, "image_id": "case1"},
                {**BOX, "image_path": "img/b.dcm", "image_id": "case1"},
                {**BOX, "x0": "1", "patient_id": "P9", "image_id": "case1"},
            ],
            header=header,
        ),
        DEFAULT_LABEL_MAP,
    )
    assert [r.row for r in rows] == [1]
    assert "image_id 'case1' is already used by row 1" in rejections[0].text
    assert "listed in row 1 with patient_id 'P1'" in rejections[1].text
    assert rejections[1].to_json(public=True)["reason"].endswith("listed in row 1 with patient_id <withheld>")


def test_wrong_field_count_and_blank_lines(folder: Path) -> None:
    path = folder / "raw.csv"
    path.write_text(
        "image_path,patient_id,label,x0,y0,x1,y1\n"
        "img/a.dcm,P1,spiculated,1,2,3\n"
        "\n"
        "img/a.dcm,P1,spiculated,1,2,3,4,5\n"
        'img/a.dcm,"P1, left",spiculated,1,2,3,4\n',
        encoding="utf-8",
    )
    rows, rejections = read_manifest(path, DEFAULT_LABEL_MAP)
    assert [(r.row, r.reason) for r in rejections] == [
        (1, "row has 6 fields, the header has 7"),
        (3, "row has 8 fields, the header has 7"),
    ]
    assert len(rows) == 1 and rows[0].row == 4 and rows[0].patient_id == "P1, left"


def test_bom_header_case_extra_columns_and_absolute_path(folder: Path,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "scan.dcm"
    elsewhere.write_bytes(b"x")
    path = folder / "bom.csv"
    path.write_text(
        "\ufeff Image_Path ,Patient_ID,LABEL,x0,y0,x1,y1,notes\n"
        f"{elsewhere},P1,spiculated,1,2,3,4,anything\n",
        encoding="utf-8",
    )
    rows, rejections = read_manifest(path, DEFAULT_LABEL_MAP)
    assert not rejections
    assert rows[0].image_path == elsewhere
    assert rows[0].image_id == elsewhere.with_suffix("").as_posix().lstrip("/")


# ---------------------------------------------------------------- file-level errors


def test_symlink_loop_and_broken_link_are_named(folder: Path) -> None:
    (folder / "img" / "loop1.dcm").symlink_to(folder / "img" / "loop2.dcm")
    (folder / "img" / "loop2.dcm").symlink_to(folder / "img" / "loop1.dcm")
    (folder / "img" / "dangling.dcm").symlink_to(folder / "img" / "gone.dcm")
    rows, rejections = read_manifest(
        write(folder, [{**BOX, "image_path": "img/loop1.dcm"}, {**BOX, "image_path": "img/dangling.dcm"}, BOX]),
        DEFAULT_LABEL_MAP,
    )
    assert [r.row for r in rows] == [3]
    assert rejections[0].text == f"image file is a symbolic link loop: {folder / 'img' / 'loop1.dcm'}"
    assert rejections[1].text.startswith("image file is a broken symbolic link (its target is missing)")


def test_rows_beyond_a_bad_number_go_on(folder: Path) -> None:
    # A value that would overflow when the crop box is built is one rejected row, not a stopped import.
    huge = {"image_path": "img/b.dcm", "patient_id": "P2", "label": "circumscribed", "cx": "9", "cy": "9",
            "radius": "1e300"}
    rows, rejections = read_manifest(write(folder, [huge, BOX, {**huge, "radius": "inf"}]), DEFAULT_LABEL_MAP)
    assert [r.row for r in rows] == [2] and [r.row for r in rejections] == [1, 3]


@pytest.mark.parametrize("line", [1, 2, 3])
def test_nul_byte_is_one_error_naming_file_and_line(folder: Path, line: int) -> None:
    path = write(folder, [BOX, {**BOX, "x0": "11"}])
    data = bytearray(path.read_bytes())
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    data[starts[line - 1] + 3] = 0  # inside a field of that line
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError) as info:
        read_manifest(path, DEFAULT_LABEL_MAP)
    assert str(info.value).startswith(f"{path}: line {line}: NUL byte")


def test_non_utf8_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("image_path,patient_id,label,x0,y0,x1,y1\nimg/a.dcm,Müller,spiculated,1,2,3,4\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"not a UTF-8 CSV text file \(line 2, byte"):
        read_manifest(path, DEFAULT_LABEL_MAP)


def test_manifest_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="CSV file is a directory"):
        read_manifest(tmp_path, DEFAULT_LABEL_MAP)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv", DEFAULT_LABEL_MAP)


def test_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(tmp_path / "e.csv", DEFAULT_LABEL_MAP)


def test_binary_file_is_not_a_csv(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ManifestError, match="not a UTF-8 CSV"):
        read_manifest(tmp_path / "b.csv", DEFAULT_LABEL_MAP)


def test_utf16_export_is_refused(tmp_path: Path) -> None:
    # Spreadsheet "Unicode text" exports are UTF-16; they must not be read as garbage rows.
    (tmp_path / "u.csv").write_text("image_path,patient_id,label,x0,y0,x1,y1\n", encoding="utf-16")
    with pytest.raises(ManifestError, match="not a UTF-8 CSV"):
        read_manifest(tmp_path / "u.csv", DEFAULT_LABEL_MAP)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (["image_path", "patient_id", "x0", "y0", "x1", "y1"], "required column label is missing"),
        (["image_path", "label", "roi_mask_path"], "required column patient_id is missing"),
        (["image_path;patient_id;label;x0;y0;x1;y1"], "comma-separated"),
        (["image_path", "patient_id", "label", "split"], "no annotation column"),
        (["image_path", "patient_id", "label", "x0", "y0", "x1"], "column y1 is missing; the box annotation"),
        (["image_path", "patient_id", "label", "cx", "radius"], "column cy is missing; the circle annotation"),
        (["image_path", "patient_id", "label", "x0", "y0", "x1", "y1", "Label"], "label appears more than once"),
    ],
)
def test_header_errors_name_file_and_column(tmp_path: Path, header: list[str], words: str) -> None:
    path = write(tmp_path, [], header=header)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, DEFAULT_LABEL_MAP)
    assert words in str(info.value) and str(path) in str(info.value)


def test_invalid_label_map_target(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="targets must be one of"):
        read_manifest(write(tmp_path, [BOX]), {"spiculated": "spiky"})
