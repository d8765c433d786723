"""CBIS-DDSM importer: label accounting on the real CSVs, file resolution on a tiny fake TCIA tree."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fpnpipe.config.data import DEFAULT_LABEL_MAP
from fpnpipe.data import cbis
from fpnpipe.data.cbis import CBIS_COLUMNS, label_counts, read_cbis
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.manifest import ManifestError

REAL = Path(__file__).resolve().parent / "fixtures" / "cbis-ddsm"
REAL_CSVS = [REAL / "mass_case_description_train_set.csv", REAL / "mass_case_description_test_set.csv"]

# Reference facts (data-sources notes): rows whose margin is exactly one target class, per official set.
REFERENCE = {
    "train": {"circumscribed": 305, "indistinct": 278, "spiculated": 281},
    "test": {"circumscribed": 87, "indistinct": 92, "spiculated": 82},
}
ROWS_PER_SET = {"train": 1318, "test": 378}


def test_real_csvs_label_accounting() -> None:
    counts = label_counts(REAL_CSVS, DEFAULT_LABEL_MAP)
    for name, expected in REFERENCE.items():
        assert counts[name].kept == expected
        assert sum(expected.values()) + sum(counts[name].dropped.values()) == ROWS_PER_SET[name]
        assert "OBSCURED" in counts[name].dropped and "NA" in counts[name].dropped
        assert not any(margin in counts[name].dropped for margin in ("CIRCUMSCRIBED", "ILL_DEFINED", "SPICULATED"))
    assert "ILL_DEFINED-SPICULATED" in counts["train"].dropped


def test_real_csvs_without_images_reject_every_row(tmp_path: Path) -> None:
    rows, rejections = read_cbis(REAL_CSVS, tmp_path, DEFAULT_LABEL_MAP)
    assert rows == []
    assert len(rejections) == sum(ROWS_PER_SET.values())
    kept = sum(sum(v.values()) for v in REFERENCE.values())
    by_label = [r for r in rejections if "not in data.label_map" in r.reason]
    not_found = [r for r in rejections if r.text.startswith("full mammogram not found: tried ")]
    assert len(by_label) == sum(ROWS_PER_SET.values()) - kept
    assert len(not_found) == kept
    assert all(str(tmp_path) in r.text and r.text.endswith("/*.dcm") for r in not_found)
    assert not any(str(tmp_path) in r.to_json(public=True)["reason"] for r in not_found)
    # Every row number appears once per file, in file order.
    train_rows = [r.row for r in rejections if r.source.endswith("train_set.csv")]
    assert train_rows == list(range(1, ROWS_PER_SET["train"] + 1))


# ---------------------------------------------------------------- a tiny fake TCIA download


def uid(n: int) -> str:
    return f"1.3.6.1.4.1.9590.100.1.2.{n}"


def tail(u: str) -> str:
    return u.replace(".", "")[-5:]


def put_dicom(path: Path, shape: tuple[int, int], study: str, series: str, mask: bool = False) -> Path:
    """A small DICOM at `path` with exact Study / Series UIDs (write_dicom derives its own, so reset them)."""
    if mask:
        pixels = np.zeros(shape, np.uint8)
        pixels[shape[0] // 3 : shape[0] // 2, shape[1] // 3 : shape[1] // 2] = 255
    else:
        pixels = (np.arange(shape[0] * shape[1]).reshape(shape) % 4096).astype(np.uint16)
    write_dicom(path, pixels, uid_key=str(path))
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.save_as(path)
    return path


class Tree:
    """Builds CSV rows and the matching TCIA-layout files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows: list[dict[str, str]] = []
        self.n = 10_000

    def new_uid(self) -> str:
        self.n += 7919
        return uid(10**30 + self.n)

    def case(
        self,
        folder: str,
        margin: str,
        *,
        shared_series: bool = True,
        mask_first: bool = True,
        with_image: bool = True,
        with_crop: bool = True,
        roi_series: str | None = None,
        series_folder_tail: str | None = None,
        layout: str = "tcia",
    ) -> dict[str, str]:
        """Add one abnormality (id 1) of case `folder`; returns its CSV row."""
        image_study, image_series = self.new_uid(), self.new_uid()
        roi_study, roi_series = self.new_uid(), roi_series or self.new_uid()
        crop_series = roi_series if shared_series else self.new_uid()
        image_rel = f"{folder}/{image_study}/{image_series}/000000.dcm"
        crop_rel = f"{folder}_1/{roi_study}/{crop_series}/000000.dcm"
        roi_rel = f"{folder}_1/{roi_study}/{roi_series}/{'000001' if shared_series else '000000'}.dcm"
        if layout == "csv":
            if with_image:
                put_dicom(self.root / image_rel, (60, 40), image_study, image_series)
            put_dicom(self.root / roi_rel, (60, 40), roi_study, roi_series, mask=True)
            if with_crop:
                put_dicom(self.root / crop_rel, (12, 10), roi_study, crop_series)
        else:
            image_dir = self.root / folder / f"07-20-2016-DDSM-NA-{tail(image_study)}"
            if with_image:
                put_dicom(image_dir / f"1.000000-full mammogram images-{tail(image_series)}" / "1-1.dcm", (60, 40),
                          image_study, image_series)  # fmt: skip
            roi_dir = self.root / f"{folder}_1" / f"07-21-2016-DDSM-NA-{tail(roi_study)}"
            roi_tail = series_folder_tail or tail(roi_series)
            mask_series_dir = roi_dir / f"1.000000-ROI mask images-{roi_tail}"
            crop_series_dir = (mask_series_dir if shared_series
                               else roi_dir / f"1.000000-cropped images-{tail(crop_series)}")
            mask_name, crop_name = ("1-1.dcm", "1-2.dcm") if mask_first or not shared_series else ("1-2.dcm", "1-1.dcm")
            put_dicom(mask_series_dir / mask_name, (60, 40), roi_study, roi_series, mask=True)
            if with_crop:
                put_dicom(crop_series_dir / crop_name, (12, 10), roi_study, crop_series)
        patient = "_".join(folder.split("_")[1:3])
        side, view = folder.split("_")[3:5]
        row = {
            "patient_id": patient, "breast_density": "3", "left or right breast": side, "image view": view,
            "abnormality id": "1", "abnormality type": "mass", "mass shape": "OVAL", "mass margins": margin,
            "assessment": "4", "pathology": "BENIGN", "subtlety": "3", "image file path": image_rel,
            "cropped image file path": crop_rel, "ROI mask file path": roi_rel + "\n",
        }  # fmt: skip
        self.rows.append(row)
        return row

    def write_csv(self, name: str = "mass.csv", header: tuple[str, ...] = CBIS_COLUMNS) -> Path:
        path = self.root.parent / name
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in self.rows:
                writer.writerow([row.get(c, "") for c in header])
        return path


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    (tmp_path / "CBIS-DDSM").mkdir()
    return Tree(tmp_path / "CBIS-DDSM")


def mask_in(path: Path) -> bool:
    return int(pydicom.dcmread(path, stop_before_pixels=True).BitsAllocated) == 8


def test_fake_tcia_tree_resolution(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    tree.case("Mass-Training_P_00001_LEFT_CC", "SPICULATED", mask_first=False)
    tree.case("Mass-Training_P_00002_RIGHT_MLO", "CIRCUMSCRIBED", mask_first=True)
    tree.case("Mass-Test_P_00003_LEFT_CC", "ILL_DEFINED", shared_series=False)
    tree.case("Mass-Test_P_00005_LEFT_MLO", "SPICULATED", layout="csv")
    tree.case("Mass-Training_P_00004_LEFT_CC", "SPICULATED", with_image=False)
    tree.case("Mass-Training_P_00006_LEFT_CC", "OBSCURED")
    tree.case("Mass-Training_P_00007_LEFT_CC", "N/A")
    tree.case("Mass-Training_P_00008_LEFT_CC", "SPICULATED", with_crop=False)
    csv_path = tree.write_csv()

    walks = []
    real_walk = os.walk
    monkeypatch.setattr(cbis.os, "walk", lambda *a, **k: walks.append(a) or real_walk(*a, **k))
    rows, rejections = read_cbis([csv_path], tree.root, DEFAULT_LABEL_MAP)
    assert len(walks) == 1  # the download folder is indexed once, not per row

    by_id = {r.image_id: r for r in rows}
    assert sorted(by_id) == [
        "Mass-Test_P_00003_LEFT_CC",
        "Mass-Test_P_00005_LEFT_MLO",
        "Mass-Training_P_00001_LEFT_CC",
        "Mass-Training_P_00002_RIGHT_MLO",
    ]
    for row in rows:
        assert mask_in(row.roi_mask_path), f"{row.image_id}: picked the crop, not the mask"
        assert not mask_in(row.image_path) and row.image_path.is_absolute()
        assert row.patient_id == "_".join(row.image_id.split("_")[1:3])
    assert by_id["Mass-Training_P_00001_LEFT_CC"].roi_mask_path.name == "1-2.dcm"
    assert by_id["Mass-Training_P_00002_RIGHT_MLO"].roi_mask_path.name == "1-1.dcm"
    assert by_id["Mass-Test_P_00005_LEFT_MLO"].roi_mask_path.name == "000001.dcm"  # CSV layout, newline stripped
    assert by_id["Mass-Training_P_00001_LEFT_CC"].label == "spiculated"
    assert by_id["Mass-Test_P_00003_LEFT_CC"].label == "indistinct"
    assert by_id["Mass-Training_P_00001_LEFT_CC"].split is None
    assert by_id["Mass-Test_P_00003_LEFT_CC"].split == "test"

    reasons = {r.row: r.text for r in rejections}
    assert sorted(reasons) == [5, 6, 7, 8]
    assert reasons[5].startswith("full mammogram not found: tried ")
    assert "Mass-Training_P_00004_LEFT_CC/*-" in reasons[5]
    assert "label (mass margins) 'OBSCURED' is not in data.label_map" in reasons[6]
    assert "label (mass margins) is missing" in reasons[7] and "not in data.label_map" in reasons[7]
    assert "cannot be told from the crop" in reasons[8]


def test_series_folder_tail_without_leading_zeros(tree: Tree) -> None:
    roi_series = uid(10**30 + 42)
    assert tail(roi_series) == "00042"
    tree.case("Mass-Training_P_00010_LEFT_CC", "SPICULATED", roi_series=roi_series, series_folder_tail="42")
    rows, rejections = read_cbis([tree.write_csv()], tree.root, DEFAULT_LABEL_MAP)
    assert not rejections and mask_in(rows[0].roi_mask_path)
    assert rows[0].roi_mask_path.parent.name.endswith("-42")


def test_duplicate_abnormality_and_non_mass_rows(tree: Tree) -> None:
    row = tree.case("Mass-Training_P_00011_LEFT_CC", "SPICULATED")
    tree.rows.append({**row, "subtlety": "5"})
    tree.rows.append({**row})
    tree.rows.append({**row, "abnormality type": "calcification",
                      "image file path": "Calc-Training_P_1_LEFT_CC/1.2/3.4/0.dcm"})
    tree.rows.append({**row, "image file path": "just/a/path"})
    rows, rejections = read_cbis([tree.write_csv()], tree.root, DEFAULT_LABEL_MAP)
    assert len(rows) == 1
    reasons = {r.row: r.text for r in rejections}
    assert "abnormality Mass-Training_P_00011_LEFT_CC_1 is already listed at" in reasons[2]
    assert reasons[3] == "exact duplicate of row 1"
    assert "abnormality type 'calcification' is not 'mass'" in reasons[4]
    assert "not a Mass-Training / Mass-Test case" in reasons[4]
    assert "is not <case folder>/<StudyInstanceUID>/<SeriesInstanceUID>/<file>" in reasons[5]


def test_header_missing_column_names_it(tree: Tree) -> None:
    tree.case("Mass-Training_P_00012_LEFT_CC", "SPICULATED")
    header = tuple(c for c in CBIS_COLUMNS if c != "mass margins")
    with pytest.raises(ManifestError, match="column 'mass margins' is missing"):
        read_cbis([tree.write_csv(header=header)], tree.root, DEFAULT_LABEL_MAP)
    calc = tuple("breast density" if c == "breast_density" else c for c in CBIS_COLUMNS)
    with pytest.raises(ManifestError, match="calcification CSV"):
        read_cbis([tree.write_csv(header=calc)], tree.root, DEFAULT_LABEL_MAP)


def test_missing_image_root_and_csv(tree: Tree) -> None:
    tree.case("Mass-Training_P_00013_LEFT_CC", "SPICULATED")
    with pytest.raises(ManifestError, match="image folder not found"):
        read_cbis([tree.write_csv()], tree.root / "nope", DEFAULT_LABEL_MAP)
    with pytest.raises(ManifestError, match="not found"):
        read_cbis([tree.root / "none.csv"], tree.root, DEFAULT_LABEL_MAP)


def test_label_map_is_a_parameter(tree: Tree) -> None:
    tree.case("Mass-Training_P_00014_LEFT_CC", "OBSCURED")
    tree.case("Mass-Training_P_00015_LEFT_CC", "ILL_DEFINED-SPICULATED")
    csv_path = tree.write_csv()
    label_map = {**DEFAULT_LABEL_MAP, "obscured": "indistinct", " Ill_Defined-Spiculated ": "spiculated"}
    rows, rejections = read_cbis([csv_path], tree.root, label_map)
    assert not rejections and [r.label for r in rows] == ["indistinct", "spiculated"]
    counts = label_counts([csv_path], label_map)
    assert counts["train"].kept == {"circumscribed": 0, "indistinct": 1, "spiculated": 1}
    assert counts["train"].dropped == {} and "test" not in counts


def test_nul_byte_in_a_cbis_csv_is_one_error_naming_the_line(tmp_path: Path) -> None:
    data = bytearray(REAL_CSVS[1].read_bytes())
    third_line = [i for i, byte in enumerate(data) if byte == ord("\n")][1] + 1
    data[third_line + 2] = 0
    path = tmp_path / "mass_case_description_test_set.csv"
    path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=rf"^{path}: line 3: NUL byte"):
        read_cbis([path], tmp_path, DEFAULT_LABEL_MAP)
