"""explain-image on a synthetic DICOM: the crop is preprocessing's, the probabilities are printed, the figure
is written; bad input stops with a message that names the problem."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fpnpipe.classes import CLASSES
from fpnpipe.config import CropParams
from fpnpipe.data.crops import context_box, crop_image, mask_box
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.images import read_image, read_mask
from fpnpipe.data.intensity import normalize_intensity
from fpnpipe.data.pseudonym import read_mapping
from fpnpipe.explain.arguments import NewImageError, parse_box
from fpnpipe.explain.figures import CaseLayout
from fpnpipe.explain.single import crop_new_image
from fpnpipe.model.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import write_params
from tests.test_explain_stage import SIZE, build_world, tiny_model

H, W = 200, 160
DISC = (90, 110, 18)  # cx, cy, r


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained-looking world (tiny model + record, 32 px crops), a DICOM with a bright disc (stored
    MONOCHROME1, so preprocessing must invert it) and its ROI mask as PNG; built once per module."""
    root = tmp_path_factory.mktemp("explain_image")
    build_world(root)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:H, :W]
    img = 0.45 + 0.05 * rng.standard_normal((H, W))
    cx, cy, r = DISC
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    img[disc] += 0.3
    stored = ((1 - np.clip(img, 0, 1)) * 4000).astype(np.uint16)
    write_dicom(root / "new case.dcm", stored, uid_key="explain-image-test", photometric="MONOCHROME1")
    Image.fromarray(disc.astype(np.uint8) * 255).save(root / "roi.png")
    return root


@pytest.fixture
def case_files(in_tmp: Path, template: Path) -> Path:
    """This test's own copy of the template, as the working directory."""
    shutil.copytree(template, in_tmp, dirs_exist_ok=True)
    return in_tmp


def test_crop_is_the_preprocessing_crop(case_files: Path) -> None:
    crop = CropParams(size=SIZE)
    got = crop_new_image(case_files / "new case.dcm", crop, False, (0.5, 99.5), roi=case_files / "roi.png")
    image = normalize_intensity(read_image(case_files / "new case.dcm"), (0.5, 99.5))
    box = context_box(mask_box(read_mask(case_files / "roi.png")), crop.context)
    np.testing.assert_array_equal(got, crop_image(image, box, SIZE))
    assert got[SIZE // 2, SIZE // 2] > got[0, 0]  # MONOCHROME1 inverted: the dense disc is bright


def test_explain_image_prints_probabilities_and_writes_the_figure(case_files: Path, run_stage) -> None:
    result = run_stage("explain-image", "new case.dcm", "--roi", "roi.png", "--params", "params.yaml", "--out", "f.png")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in CLASSES}
    assert set(rows) == set(CLASSES)
    printed = np.array([float(rows[c].split()[1]) for c in CLASSES])
    model, _ = load_checkpoint(case_files / "models/final.pt")
    model.eval()
    crop = crop_new_image(case_files / "new case.dcm", CropParams(size=SIZE), False, (0.5, 99.5),
                          roi=case_files / "roi.png")
    with torch.no_grad():
        expected = model(torch.from_numpy(crop)[None, None]).probabilities[0].numpy()
    np.testing.assert_allclose(printed, expected, atol=1e-4)
    assert "<- predicted" in rows[CLASSES[int(expected.argmax())]]
    layout = CaseLayout.for_rows(2)  # explain.top_prototypes = 2, and 32 px crops fit the smallest panel
    with Image.open(case_files / "f.png") as img:
        assert img.size == (round(layout.width * 60), round(layout.height * 60))

    # The same lesion given as its ROI's box gives the same crop, hence the same table; default output path.
    x0, y0, x1, y1 = mask_box(read_mask(case_files / "roi.png"))
    by_box = run_stage("explain-image", "new case.dcm", "--box", f"{x0},{y0},{x1},{y1}", "--params", "params.yaml")
    assert by_box.exit_code == 0, by_box.output
    assert [ln for ln in by_box.output.splitlines() if ln.split() and ln.split()[0] in CLASSES] == list(rows.values())
    assert (case_files / "reports/explain-image/new_case.png").is_file()


def test_figure_is_named_by_pseudonym_when_the_source_is_pseudonymised(case_files: Path, run_stage,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("FPNPIPE_PSEUDONYM_KEY", "explain-image-test-key")
    shutil.copy(case_files / "new case.dcm", case_files / "Doe^Jane_ACC998877.dcm")
    write_params(case_files / "hospital.yaml", {"data": {"source": "manifest"}, "crop": {"size": SIZE},
                                                 "train": {"device": "cpu"}, "explain": {"top_prototypes": 2,
                                                                                         "dpi": 60}})
    result = run_stage("explain-image", "Doe^Jane_ACC998877.dcm", "--roi", "roi.png", "--params", "hospital.yaml")
    assert result.exit_code == 0, result.output
    (figure,) = (case_files / "reports/explain-image").iterdir()
    assert re.fullmatch(r"I-[0-9a-f]{12}\.png", figure.name)
    mapping = read_mapping(case_files / "data/private/pseudonyms.csv")
    assert mapping[("image", (case_files / "Doe^Jane_ACC998877").as_posix())] == figure.stem
    assert b"Doe" not in figure.read_bytes() and b"ACC998877" not in figure.read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "give exactly one of --box"),
        (("--box", "1,1,20,20", "--roi", "roi.png"), 2, "give exactly one of --box"),
        (("--box", "1,1,20"), 2, "--box must be four numbers"),
        (("--box", "100,100,400,150"), 1, "extends outside the image (160x200)"),
        (("--roi", "absent.png"), 1, "ROI mask absent.png: file not found"),
    ],
)
def test_bad_boxes_and_masks_stop_with_a_message(case_files: Path, run_stage, args, code, message) -> None:
    result = run_stage("explain-image", "new case.dcm", *args, "--params", "params.yaml")
    assert result.exit_code == code
    assert message in _flat(result.output)
    assert not (case_files / "reports/explain-image").exists()


def test_unreadable_dicom_and_wrong_crop_size_are_refused(case_files: Path, run_stage) -> None:
    whole = (case_files / "new case.dcm").read_bytes()
    (case_files / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    (case_files / "junk.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 3)
    for name in ("truncated.dcm", "junk.dcm"):
        result = run_stage("explain-image", name, "--box", "1,1,20,20", "--params", "params.yaml")
        assert result.exit_code == 1
        assert f"error: explain-image: {name}: " in _flat(result.output)

    write_params(case_files / "p64.yaml", {"crop": {"size": 64}})
    result = run_stage("explain-image", "new case.dcm", "--roi", "roi.png", "--params", "p64.yaml")
    assert result.exit_code == 1, result.output
    assert "trained on 32 px crops" in _flat(result.output) and "crop.size is 64" in _flat(result.output)


def test_black_box_prints_probabilities_only(case_files: Path, run_stage) -> None:
    model, config = tiny_model("vgg16")
    save_checkpoint(case_files / "models/final.pt", model, config)
    (case_files / "models/final_prototypes.h5").unlink()
    result = run_stage("explain-image", "new case.dcm", "--roi", "roi.png", "--params", "params.yaml")
    assert result.exit_code == 0, result.output
    assert sum(line.endswith("<- predicted") for line in result.output.splitlines()) == 1
    assert "has no prototypes" in _flat(result.output)
    assert not (case_files / "reports/explain-image").exists()


def test_parse_box() -> None:
    assert parse_box(" 1, 2.5,30,40 ") == (1.0, 2.5, 30.0, 40.0)
    for bad in ("1,2,3", "a,b,c,d", "5,5,5,10", "1,2,nan,4"):
        with pytest.raises(NewImageError):
            parse_box(bad)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("new case.dcm", "--box", "1,1,20"), 2, "--box must be four numbers"),
        (("new case.dcm", "--box", "5,5,1,10"), 2, "x1 must exceed x0"),
        (("absent.dcm", "--box", "1,1,20,20"), 1, "absent.dcm: file not found"),
        (("new case.dcm", "--roi", "absent.png"), 1, "ROI mask absent.png: file not found"),
        (("new case.dcm", "--box", "1,1,20,20", "--model", "absent.pt"), 1, "absent.pt: model checkpoint not found"),
    ],
)
def test_arguments_are_checked_before_torch_is_imported(case_files: Path, args, code, message) -> None:
    """The command runs in a fresh interpreter; after the error, torch must not have been imported."""
    probe = ("import sys\nfrom stages.cli import main\nsys.argv = ['fpnpipe', 'explain-image', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
             "print('torch imported:', 'torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", probe, *args, "--params", "params.yaml"], capture_output=True,
                            text=True, env=env, timeout=120)
    out = _flat(result.stdout + result.stderr)
    assert f"exit {code}" in out and message in out, out
    assert "torch imported: False" in out
    assert not (case_files / "reports/explain-image").exists()
