"""preprocess and negatives on a hand-made manifest: good rows become crops, each bad row is reported
with its reason and never stops the others, nothing identifying leaves the DICOM header."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from fpnpipe.classes import CLASSES, NEGATIVE_INDEX
from fpnpipe.data.dicom_write import Identity, write_dicom
from fpnpipe.data.image_table import read_image_table
from fpnpipe.data.lesion_crops import load_image
from fpnpipe.data.schema import read_crops
from fpnpipe.data.thumbnails import read_thumbnails, source_image_id
from tests.conftest import write_params

H, W = 160, 128
IDENT = Identity(patient_name="Secret^Person", patient_id="MRN-77", birth_date="19511231",
                 accession="ACC-424242", institution="Hidden General Hospital")


def _mammogram(seed: int, lesion: tuple[int, int, int] | None) -> np.ndarray:
    """uint16 (H, W): dark air, a bright textured breast on the left half-ellipse, an optional disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    breast = ((xx / 110.0) ** 2 + ((yy - H / 2) / 75.0) ** 2) <= 1
    img = np.where(breast, 0.5 + 0.1 * rng.standard_normal((H, W)), 0.02)
    if lesion is not None:
        cx, cy, r = lesion
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] += 0.3
    return (np.clip(img, 0, 1) * 4000).astype(np.uint16)


def _disc(cx: int, cy: int, r: int, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8) * 255


@pytest.fixture
def dataset(in_tmp: Path) -> Path:
    raw = in_tmp / "raw"
    (raw / "img").mkdir(parents=True)
    rows: list[dict[str, str]] = []

    def image(name: str, seed: int, lesion=None, **kw) -> str:
        write_dicom(raw / "img" / f"{name}.dcm", _mammogram(seed, lesion), uid_key=name, identity=IDENT, **kw)
        return f"img/{name}.dcm"

    def mask(name: str, array: np.ndarray) -> str:
        Image.fromarray(array).save(raw / "img" / f"{name}.png")
        return f"img/{name}.png"

    def row(**kw: str) -> None:
        rows.append(kw)

    # Good rows: one per margin class with an ROI mask, a box, a circle, two lesions on one image, normals.
    for i, label in enumerate(["circumscribed", "indistinct", "spiculated"] * 3):
        p = image(f"good{i}", i, (50, 80, 12), photometric="MONOCHROME1" if i == 4 else "MONOCHROME2")
        row(image_path=p, patient_id=f"P{i}", label=label, roi_mask_path=mask(f"good{i}_roi", _disc(50, 80, 12)))
    row(image_path=image("boxed", 20, (40, 60, 10), pixel_spacing_mm=0.07), patient_id="PB", label="Spiculated",
        x0="30", y0="50", x1="51", y1="71")
    row(image_path=image("circled", 21, (40, 60, 10)), patient_id="PC", label="ILL_DEFINED", cx="40", cy="60",
        radius="10")
    two = image("two", 22, (30, 40, 8))
    row(image_path=two, patient_id="P2L", label="circumscribed", roi_mask_path=mask("two_a", _disc(30, 40, 8)))
    row(image_path=two, patient_id="P2L", label="spiculated", roi_mask_path=mask("two_b", _disc(40, 120, 8)))
    for k in range(3):
        row(image_path=image(f"normal{k}", 30 + k), patient_id=f"PN{k}", label="normal")

    # Bad rows, each with the words its reason must contain.
    bad: dict[int, str] = {}

    def bad_row(words: str, **kw: str) -> None:
        bad[len(rows) + 1] = words
        row(**kw)

    bad_row("not found", image_path="img/missing.dcm", patient_id="X1", label="spiculated", x0="1", y0="1", x1="9",
            y1="9")
    (raw / "img" / "junk.dcm").write_bytes(b"DICM" + bytes(300))
    bad_row("", image_path="img/junk.dcm", patient_id="X2", label="spiculated", x0="1", y0="1", x1="9", y1="9")
    bad_row("differs from the image", image_path=image("mism", 40, (50, 80, 12)), patient_id="X3", label="indistinct",
            roi_mask_path=mask("mism_roi", _disc(50, 80, 12, shape=(H + 4, W))))
    bad_row("outside the image", image_path=image("outside", 41), patient_id="X4", label="indistinct",
            x0="100", y0="100", x1="400", y1="300")
    grey = _disc(50, 80, 12)
    grey[0, :5] = 128
    bad_row("not binary", image_path=image("grey", 42), patient_id="X5", label="indistinct",
            roi_mask_path=mask("grey_roi", grey))
    bad_row("empty", image_path=image("empty", 43), patient_id="X6", label="indistinct",
            roi_mask_path=mask("empty_roi", np.zeros((H, W), np.uint8)))
    bad_row("label", image_path=image("obscured", 44), patient_id="X7", label="OBSCURED", x0="1", y0="1", x1="9",
            y1="9")
    bad_row("more than one split", image_path=image("split_a", 45), patient_id="X8", label="spiculated",
            x0="10", y0="10", x1="30", y1="30", split="train")
    bad_row("more than one split", image_path=image("split_b", 46), patient_id="X8", label="spiculated",
            x0="10", y0="10", x1="30", y1="30", split="test")
    bad_row("x1", image_path=image("inverted", 47), patient_id="X9", label="spiculated", x0="30", y0="10", x1="20",
            y1="30")
    # Pixels that cannot be trusted or would teach nothing (issue 13.5 / 13.6).
    bad_row("constant image", image_path=image("slope0", 48, (50, 80, 12), rescale=(0.0, 100.0)), patient_id="X10",
            label="spiculated", x0="40", y0="70", x1="60", y1="90")
    bad_row("constant crop", image_path=image("air", 49), patient_id="X11", label="spiculated",
            x0="100", y0="2", x1="120", y1="22")  # a box in the air beside the breast
    bad_row("only 29% of the crop box lies inside the image", image_path=image("corner", 50), patient_id="X12",
            label="indistinct", cx="5", cy="5", radius="40")
    bad_row("longer than the image's longer side (160 px)", image_path=image("huge", 51), patient_id="X13",
            label="indistinct", cx="50", cy="50", radius="3000")
    bad_row("x1 = 1e300 is beyond 1000000 pixels", image_path=image("overflow", 52), patient_id="X14",
            label="indistinct", x0="1", y0="1", x1="1e300", y1="9")
    wide = write_dicom(raw / "img" / "wide.dcm", _mammogram(53, (50, 80, 12)) * 16, uid_key="wide", bits_stored=12,
                       identity=IDENT)
    bad_row("stored values out of range", image_path="img/wide.dcm", patient_id="X15", label="indistinct",
            x0="40", y0="70", x1="60", y1="90")
    cut = write_dicom(raw / "img" / "cut.dcm", (_mammogram(54, (50, 80, 12)) // 16).astype(np.uint8), uid_key="cut",
                      identity=IDENT)
    buffer = io.BytesIO()
    Image.fromarray((_mammogram(54, (50, 80, 12)) // 16).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    ds = pydicom.dcmread(cut)
    ds.PixelData = encapsulate([buffer.getvalue()[: len(buffer.getvalue()) // 2]])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(cut)
    bad_row("incomplete compressed pixel data", image_path="img/cut.dcm", patient_id="X16", label="indistinct",
            x0="40", y0="70", x1="60", y1="90")
    assert wide.is_file()

    columns = ["image_path", "patient_id", "label", "roi_mask_path", "x0", "y0", "x1", "y1", "cx", "cy", "radius",
               "split"]
    with open(raw / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (in_tmp / "bad_rows.json").write_text(json.dumps(bad))
    write_params(in_tmp / "params.yaml", {
        # Identifiers kept as they are, so the tests can find crops by image id (test_pseudonym.py covers
        # the default, pseudonymised, manifest run).
        "data": {"source": "manifest", "raw_dir": "raw", "manifest": "raw/manifest.csv", "pseudonymize": False},
        "crop": {"size": 32, "context": 1.5, "margin_band_px": 2},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2},
        "preprocess": {"jobs": 1},
        "negatives": {"ratio": 2.0, "min_distance_px": 8.0, "skin_margin_px": 4},
    })
    return in_tmp


def test_bad_rows_are_reported_and_good_rows_cropped(dataset, run_stage):
    result = run_stage("preprocess", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    report = json.loads(Path("reports/preprocess.json").read_text())
    bad = {int(k): v for k, v in json.loads(Path("bad_rows.json").read_text()).items()}
    rejected = {r["row"]: r["reason"] for r in report["rejected"]}
    assert set(rejected) == set(bad), report["rejected"]
    for row, words in bad.items():
        assert words.lower() in rejected[row].lower(), (row, rejected[row])

    crops = read_crops("data/processed/crops.h5")
    assert len(crops) == 9 + 1 + 1 + 2 == report["crops"]["total"]
    assert crops.images.shape == (13, 32, 32) and crops.images.min() >= 0 and crops.images.max() <= 1
    # The box and circle annotations have no outline, so no fine annotation; ROI masks give the band.
    by_id = {i: k for k, i in enumerate(crops.image_id)}
    assert not crops.has_fine[by_id["img/boxed"]] and not crops.has_fine[by_id["img/circled"]]
    assert crops.has_fine[by_id["img/good0"]] and crops.fine[by_id["img/good0"]].any()
    assert {"img/two#1", "img/two#2"} <= set(by_id)
    assert CLASSES[crops.label[by_id["img/circled"]]] == "indistinct"  # ILL_DEFINED via the label map
    # The lesion (disc of radius 12 in a 36 px context box) sits in the middle of its crop.
    roi = crops.roi[by_id["img/good0"]].astype(bool)
    ys, xs = np.nonzero(roi)
    assert abs(ys.mean() - 15.5) < 1 and abs(xs.mean() - 15.5) < 1
    # Fine band hugs the ROI boundary: every band pixel is within 2 px of it.
    band = crops.fine[by_id["img/good0"]].astype(bool)
    assert (band & roi).any() and (band & ~roi).any() and not (band & ~np.pad(roi, 3)[3:-3, 3:-3]).all()
    # No patient in two splits.
    for patient in set(crops.patient_id):
        assert len(set(crops.split[crops.patient_id == patient])) == 1


def test_nothing_identifying_in_any_output(dataset, run_stage):
    assert run_stage("preprocess", "--params", "params.yaml").exit_code == 0
    assert run_stage("negatives", "--params", "params.yaml").exit_code == 0
    outputs = list(Path("data/processed").iterdir()) + list(Path("reports").iterdir())
    assert len(outputs) >= 5
    for path in outputs:
        blob = path.read_bytes()
        for secret in ("Secret", "MRN-77", "19511231", "ACC-424242", "Hidden General"):
            assert secret.encode() not in blob, (path, secret)


def test_outputs_byte_stable_and_independent_of_jobs(dataset, run_stage):
    digests = []
    for jobs in (1, 2, 1):
        params = write_params(Path("p.yaml"), {"data": {"source": "manifest", "raw_dir": "raw",
                                                         "manifest": "raw/manifest.csv"},
                                                "crop": {"size": 32}, "preprocess": {"jobs": jobs}})
        assert run_stage("preprocess", "--params", str(params)).exit_code == 0
        digests.append([hashlib.sha256(Path(f"data/processed/{name}").read_bytes()).hexdigest()
                        for name in ("crops.h5", "thumbnails.h5")])
    assert digests[0] == digests[1] == digests[2]


def test_strict_makes_any_rejection_fatal_and_writes_nothing(dataset, run_stage):
    result = run_stage("preprocess", "--params", "params.yaml", "--strict")
    assert result.exit_code != 0 and "rejected" in result.output
    assert not Path("data/processed/crops.h5").exists()


def test_param_typo_stops_before_any_work(dataset, run_stage):
    write_params(Path("typo.yaml"), {"crop": {"sise": 32}})
    result = run_stage("preprocess", "--params", "typo.yaml")
    assert result.exit_code == 2 and "crop.sise" in result.output
    assert not Path("reports").exists() and not Path("data").exists()


def test_negatives_inside_breast_away_from_lesions_split_inherited(dataset, run_stage):
    assert run_stage("preprocess", "--params", "params.yaml").exit_code == 0
    assert run_stage("negatives", "--params", "params.yaml").exit_code == 0
    neg = read_crops("data/processed/negatives.h5")
    lesions = read_crops("data/processed/crops.h5")
    table = {e.image_id: e for e in read_image_table("data/processed/images.json")}
    assert len(neg) > 0 and (neg.label == NEGATIVE_INDEX).all() and neg.has_fine.all() and not neg.fine.any()
    report = json.loads(Path("reports/negatives.json").read_text())
    for split in set(lesions.split):  # negatives.ratio 2: two patches per lesion crop of the split
        assert report["patches"]["wanted_by_split"][split] == 2 * (lesions.split == split).sum()
    lesion_splits = dict(zip(lesions.patient_id, lesions.split, strict=True))
    for k in range(len(neg)):
        source = table[neg.image_id[k].split("#neg")[0]]
        assert neg.split[k] == source.split == lesion_splits.get(source.patient_id, source.split)
        x0, y0, x1, y1 = neg.source_box[k]
        inside = (min(x1, W) - max(x0, 0)) * (min(y1, H) - max(y0, 0)) / ((x1 - x0) * (y1 - y0))
        assert inside >= 0.5  # crop.min_image_fraction, as for lesion crops
        for lx0, ly0, lx1, ly1 in source.lesion_boxes:  # at least min_distance_px from every lesion
            gap = np.hypot(max(0, lx0 - x1, x0 - lx1), max(0, ly0 - y1, y0 - ly1))
            assert gap >= 8.0
        # centred inside the breast: tissue, not air (air is 0 after normalisation), at the centre
        assert neg.images[k][15:17, 15:17].min() > 0.05


def test_thumbnail_and_pixel_spacing_of_every_accepted_image(dataset, run_stage):
    assert run_stage("preprocess", "--params", "params.yaml").exit_code == 0
    thumbnails = read_thumbnails("data/processed/thumbnails.h5")
    table = {e.image_id: e for e in read_image_table("data/processed/images.json")}
    assert set(thumbnails) == set(table)
    for image_id, thumb in thumbnails.items():
        assert thumb.source_shape == tuple(table[image_id].shape) == (H, W)
        assert thumb.pixels.shape == (H, W)  # smaller than 256 px: never enlarged, so pixel for pixel
    # The thumbnail is the normalised image the crops were cut from, in 8 bits.
    good = load_image(Path("raw/img/good0.dcm"), False, (0.5, 99.5))
    np.testing.assert_array_equal(thumbnails["img/good0"].pixels, np.round(np.asarray(good) * 255).astype(np.uint8))
    assert thumbnails["img/boxed"].pixel_spacing_mm == (0.07, 0.07)
    assert thumbnails["img/good0"].pixel_spacing_mm is None  # the header states none
    crops = read_crops("data/processed/crops.h5")
    assert all(source_image_id(str(i), thumbnails) is not None for i in crops.image_id)
