"""Pseudonymisation (data.pseudonymize): keyed, deterministic pseudonyms for patient and image ids, applied
before anything is written; no output of preprocess + negatives holds an original identifier or file stem."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from fpnpipe.config import DataParams
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.pseudonym import (
    KEY_ENV,
    KEY_FILE_ENV,
    PseudonymError,
    Pseudonymizer,
    load_key,
    read_mapping,
)
from tests.conftest import write_params
from tests.test_preprocess import IDENT, _disc, _mammogram

PSEUDONYM = re.compile(r"^[PI]-[0-9a-f]{12}$")


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


# ---------------------------------------------------------------- keys and pseudonyms


def test_pseudonym_is_the_truncated_hmac_of_kind_and_original():
    key = b"0123456789abcdef-test-key"
    p = Pseudonymizer(key)
    expected = hmac.new(key, b"patient\0DOE^JANE", hashlib.sha256).hexdigest()[:12]
    assert p.patient("DOE^JANE") == f"P-{expected}"
    assert p.image("DOE^JANE").startswith("I-") and p.image("DOE^JANE")[2:] != expected  # kinds never share
    assert Pseudonymizer(key).patient("DOE^JANE") == p.patient("DOE^JANE")  # deterministic for a fixed key
    assert Pseudonymizer(b"another-key-of-16+chars").patient("DOE^JANE") != p.patient("DOE^JANE")
    assert p.pairs() == {("patient", "DOE^JANE"): p.patient("DOE^JANE"), ("image", "DOE^JANE"): p.image("DOE^JANE")}


def test_key_from_environment_file_or_generated(tmp_path: Path):
    assert load_key(tmp_path / "k", {KEY_ENV: "  a-key-of-sixteen-chars \n"})[0] == b"a-key-of-sixteen-chars"
    with pytest.raises(PseudonymError, match="at least 16 characters"):
        load_key(tmp_path / "k", {KEY_ENV: "short"})
    outside = tmp_path / "elsewhere" / "site.key"
    outside.parent.mkdir()
    outside.write_text("site-wide-key-kept-outside-the-repo\n")
    assert load_key(tmp_path / "k", {KEY_FILE_ENV: str(outside)}) == (b"site-wide-key-kept-outside-the-repo",
                                                                      str(outside))
    with pytest.raises(PseudonymError, match="cannot read the pseudonym key"):
        load_key(tmp_path / "k", {KEY_FILE_ENV: str(tmp_path / "absent.key")})
    generated = tmp_path / ".fpnpipe" / "pseudonym.key"
    key, where = load_key(generated, {})
    assert where.endswith("(new)") and re.fullmatch(rb"[0-9a-f]{64}", key)
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert load_key(generated, {}) == (key, f"{generated} (existing)")  # kept, not regenerated


def test_source_decides_the_default():
    assert DataParams(source="manifest").pseudonymized and DataParams(source="cbis").pseudonymized
    assert not DataParams(source="synthetic").pseudonymized
    assert DataParams(source="synthetic", pseudonymize=True).pseudonymized
    assert not DataParams(source="manifest", pseudonymize=False).pseudonymized


# ---------------------------------------------------------------- a pipeline on identifying names

SECRETS = ("Doe", "DOE", "Jane", "JANE", "19451231", "ACC998877", "Roe", "ROE", "Richard", "ACC112233",
           "Smith", "SMITH", "ACC445566", "Secret^Person", "MRN-77", "Hidden General")  # fmt: skip


@pytest.fixture
def identifying(in_tmp: Path) -> Path:
    """A hospital-style export: folders and files named after the patient, patient ids that are names,
    no image_id column (so image ids come from the file names), plus rows that get rejected at import and
    at cropping with the identifying names in their reasons."""
    raw = in_tmp / "export"
    rows = []
    for k, (folder, stem, patient, label) in enumerate([
        ("Doe^Jane_19451231", "ACC998877", "DOE^JANE", "spiculated"),
        ("Doe^Jane_19451231", "ACC998877_MLO", "DOE^JANE", "circumscribed"),
        ("Smith^Anna_19500101", "ACC445566", "SMITH^ANNA", "indistinct"),
        ("Smith^Anna_19500101", "ACC445566_normal", "SMITH^ANNA", "normal"),
    ]):
        write_dicom(raw / folder / f"{stem}.dcm", _mammogram(k, (50, 80, 12)), uid_key=stem, identity=IDENT)
        row = {"image_path": f"{folder}/{stem}.dcm", "patient_id": patient, "label": label}
        if label != "normal":
            Image.fromarray(_disc(50, 80, 12)).save(raw / folder / f"{stem}_roi.png")
            row["roi_mask_path"] = f"{folder}/{stem}_roi.png"
        rows.append(row)
    # Rejected at import: the image file is missing (its path names the patient).
    rows.append({"image_path": "Roe^Richard_19600101/ACC112233.dcm", "patient_id": "ROE^RICHARD",
                 "label": "spiculated", "roi_mask_path": "Roe^Richard_19600101/ACC112233_roi.png"})
    # Rejected when cropping: the ROI mask named after the patient is not binary.
    write_dicom(raw / "Roe^Richard_19600101" / "ACC112233_CC.dcm", _mammogram(9, (50, 80, 12)), uid_key="r",
                identity=IDENT)
    grey = _disc(50, 80, 12)
    grey[0, :3] = 7
    Image.fromarray(grey).save(raw / "Roe^Richard_19600101" / "ACC112233_CC_roi.png")
    rows.append({"image_path": "Roe^Richard_19600101/ACC112233_CC.dcm", "patient_id": "ROE^RICHARD",
                 "label": "indistinct", "roi_mask_path": "Roe^Richard_19600101/ACC112233_CC_roi.png"})
    with open(raw / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_path", "patient_id", "label", "roi_mask_path"])
        writer.writeheader()
        writer.writerows(rows)
    write_params(in_tmp / "params.yaml", {
        "data": {"source": "manifest", "raw_dir": "export", "manifest": "export/manifest.csv"},  # pseudonymize: null
        "crop": {"size": 32, "context": 1.5, "margin_band_px": 2},
        "split": {"val_fraction": 0.0, "test_fraction": 0.0},
        "preprocess": {"jobs": 1},
        "negatives": {"ratio": 1.0, "min_distance_px": 8.0, "skin_margin_px": 4},
    })
    return in_tmp


def _outputs(root: Path) -> list[Path]:
    return sorted(p for d in ("data/processed", "reports") for p in (root / d).rglob("*") if p.is_file())


def test_no_output_holds_an_original_identifier(identifying: Path, run_stage):
    assert run_stage("preprocess", "--params", "params.yaml").exit_code == 0
    assert run_stage("negatives", "--params", "params.yaml").exit_code == 0
    outputs = _outputs(identifying)
    assert {p.name for p in outputs} >= {"crops.h5", "negatives.h5", "images.json", "preprocess.json", "negatives.json"}
    for path in outputs:
        blob = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in blob, (path, secret)
        assert "Doe" not in path.name and "ACC" not in path.name
    # Every identifier in the HDF5 string datasets is a pseudonym (with a lesion or negative suffix).
    for name in ("crops.h5", "negatives.h5"):
        with h5py.File(identifying / "data/processed" / name) as f:
            for key in ("patient_id", "image_id"):
                for value in f[key].asstr()[()]:
                    assert PSEUDONYM.match(value.split("#")[0]), (name, key, value)
            assert len(f["patient_id"]) > 0
    # The report names the rejected rows by number and withholds the paths they quote.
    report = json.loads((identifying / "reports/preprocess.json").read_text())
    rejected = {r["row"]: r for r in report["rejected"]}
    assert set(rejected) == {5, 6}
    assert rejected[5]["image"] is None and "image file not found: <withheld>" in rejected[5]["reason"]
    assert PSEUDONYM.match(rejected[6]["image"]) and rejected[6]["reason"].startswith("ROI mask <withheld>: mask")
    # The local mapping (git-ignored, not a DVC output) holds the way back, the key is private.
    mapping = read_mapping(identifying / "data/private/pseudonyms.csv")
    with h5py.File(identifying / "data/processed/crops.h5") as f:
        stored = set(f["patient_id"].asstr()[()])
    assert mapping[("patient", "DOE^JANE")] in stored and mapping[("patient", "SMITH^ANNA")] in stored
    assert ("image", "Doe^Jane_19451231/ACC998877") in mapping
    assert stat.S_IMODE((identifying / ".fpnpipe/pseudonym.key").stat().st_mode) == 0o600


def test_pseudonymised_outputs_are_byte_stable_for_a_fixed_key(identifying: Path, run_stage, monkeypatch):
    digests = []
    for key in ("first-key-of-enough-length", "first-key-of-enough-length", "second-key-of-enough-length"):
        monkeypatch.setenv(KEY_ENV, key)
        assert run_stage("preprocess", "--params", "params.yaml").exit_code == 0
        digests.append(hashlib.sha256((identifying / "data/processed/crops.h5").read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]
    assert not (identifying / ".fpnpipe").exists()  # a key from the environment: nothing generated


def test_off_keeps_the_identifiers(identifying: Path, run_stage):
    write_params(identifying / "off.yaml", {"data": {"source": "manifest", "raw_dir": "export",
                                                     "manifest": "export/manifest.csv", "pseudonymize": False},
                                            "crop": {"size": 32}, "preprocess": {"jobs": 1}})
    assert run_stage("preprocess", "--params", "off.yaml").exit_code == 0
    with h5py.File(identifying / "data/processed/crops.h5") as f:
        assert "DOE^JANE" in set(f["patient_id"].asstr()[()])
    assert not (identifying / "data/private").exists()
    np.testing.assert_equal(json.loads((identifying / "reports/preprocess.json").read_text())["rejected"][0]["image"],
                            "Roe^Richard_19600101/ACC112233.dcm")
