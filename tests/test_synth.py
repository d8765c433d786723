"""The synthetic phantom generator and the `synth` stage: files, headers, pixels, masks, classes, params."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless
from scipy import ndimage
from scipy.spatial import ConvexHull
from typer.testing import CliRunner

from fpnpipe.classes import MARGIN_CLASSES, NORMAL_LABEL
from fpnpipe.config import ConfigError, Params, SynthParams, parse_params
from fpnpipe.data.phantom import PixelEncoding, draw_mass, power_law_noise, render_mass, skewed_draw
from fpnpipe.data.synth_dataset import write_dataset
from fpnpipe.data.synthetic import BLOCK, assign_labels, plan_views, render_view

TINY = {
    "n_patients": 20,  # one whole label block: every label is present
    "views_per_patient": [1, 2],
    "image_shape": [256, 224],
    "lesion_radius_px": [8.0, 14.0],
    "monochrome1_fraction": 0.4,
}


def synth_params(**overrides: object) -> SynthParams:
    return parse_params({"synth": {**TINY, **overrides}}).synth


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    write_dataset(out, synth_params(), seed=3)
    return out


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def presentation_from_dicom(path: Path) -> np.ndarray:
    """Decode with pydicom, apply the Modality LUT by hand, scale the stored range to [0, 1], undo
    MONOCHROME1 inversion: (H, W) float64, bright = dense."""
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(np.float64)
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    low, high = intercept, slope * (2**ds.BitsStored - 1) + intercept
    value = (stored * slope + intercept - low) / (high - low)
    return 1.0 - value if ds.PhotometricInterpretation == "MONOCHROME1" else value


def all_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the written dataset ----------------------------------------------------------------------------------


def test_same_params_give_identical_bytes(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_dataset(again, synth_params(), seed=3)
    first, second = all_files(dataset), all_files(again)
    assert first.keys() == second.keys()
    assert len(first) > 20
    for name, content in first.items():
        assert second[name] == content, name


def test_other_seed_gives_other_pictures() -> None:
    synth = synth_params(n_patients=1)
    first = render_view(plan_views(synth, 3)[0], synth, 3).presentation
    other = render_view(plan_views(synth, 4)[0], synth, 4).presentation
    assert np.abs(first - other).mean() > 0.01


def test_manifest_columns_paths_and_labels(dataset: Path) -> None:
    rows = read_manifest(dataset)
    with open(dataset / "manifest.csv", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    assert header == ["image_path", "patient_id", "label", "roi_mask_path"]
    assert {r["label"] for r in rows} == {*MARGIN_CLASSES, NORMAL_LABEL}
    assert len({r["patient_id"] for r in rows}) == 20
    assert len({r["image_path"] for r in rows}) == len(rows)
    for r in rows:
        assert not Path(r["image_path"]).is_absolute()
        assert (dataset / r["image_path"]).is_file()
        if r["label"] == NORMAL_LABEL:
            assert r["roi_mask_path"] == ""
        else:
            assert (dataset / r["roi_mask_path"]).is_file()
    # every file in the folder is named by the manifest
    listed = {r["image_path"] for r in rows} | {r["roi_mask_path"] for r in rows if r["roi_mask_path"]}
    assert set(all_files(dataset)) == listed | {"manifest.csv"}


def test_a_patient_has_one_label(dataset: Path) -> None:
    labels: dict[str, set[str]] = {}
    for r in read_manifest(dataset):
        labels.setdefault(r["patient_id"], set()).add(r["label"])
    assert all(len(s) == 1 for s in labels.values())


def test_dicom_headers(dataset: Path) -> None:
    photometrics = set()
    for r in read_manifest(dataset):
        ds = pydicom.dcmread(dataset / r["image_path"])
        assert ds.Modality == "MG"
        assert ds.BitsAllocated == 16 and ds.BitsStored in (12, 14, 16)
        assert (ds.Rows, ds.Columns) == (256, 224)
        assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.2]
        assert ds.ImageLaterality in ("L", "R") and ds.ViewPosition in ("CC", "MLO")
        assert ds.PatientID != r["patient_id"] and "FAKE" in ds.PatientID
        assert "Fake" in str(ds.PatientName)
        assert int(ds.pixel_array.max()) <= 2**ds.BitsStored - 1
        photometrics.add(ds.PhotometricInterpretation)
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


def test_decoded_pixels_match_the_presentation_image(dataset: Path) -> None:
    synth = synth_params()
    plans = {p.image_id: p for p in plan_views(synth, 3)}
    for r in read_manifest(dataset):
        image_id = Path(r["image_path"]).stem
        ds = pydicom.dcmread(dataset / r["image_path"])
        assert (ds.file_meta.TransferSyntaxUID == RLELossless) == plans[image_id].rle
        decoded = presentation_from_dicom(dataset / r["image_path"])
        expected = render_view(plans[image_id], synth, 3).presentation
        step = 1.0 / (2**ds.BitsStored - 1)
        np.testing.assert_allclose(decoded, expected, atol=0.5 * step + 1e-6, rtol=0, err_msg=image_id)


def test_masks_are_binary_nonempty_and_inside_the_breast(dataset: Path) -> None:
    from PIL import Image

    for r in read_manifest(dataset):
        if not r["roi_mask_path"]:
            continue
        mask = np.asarray(Image.open(dataset / r["roi_mask_path"]))
        assert mask.dtype == np.uint8 and mask.shape == (256, 224)
        assert set(np.unique(mask)) == {0, 255}
        roi = mask == 255
        # Inside the breast, judged from the picture itself: the smoothed image is well above the air
        # level all around the lesion (air is below 0.06 before noise).
        picture = ndimage.gaussian_filter(presentation_from_dicom(dataset / r["image_path"]), 2.0)
        around = ndimage.binary_dilation(roi, iterations=3)
        assert picture[around].min() > 0.12, r["image_path"]
        assert not roi[0].any() and not roi[-1].any() and not roi[:, 0].any() and not roi[:, -1].any()


def test_laterality_decides_the_chest_wall_side(dataset: Path) -> None:
    for r in read_manifest(dataset):
        ds = pydicom.dcmread(dataset / r["image_path"])
        picture = presentation_from_dicom(dataset / r["image_path"])
        left, right = picture[:, :8].mean(), picture[:, -8:].mean()
        assert (left > right) == (ds.ImageLaterality == "L"), r["image_path"]


# --- the generator's parts ----------------------------------------------------------------------------------


def test_plan_mixes_file_encodings() -> None:
    synth = synth_params(n_patients=400, monochrome1_fraction=0.3)
    plans = plan_views(synth, 0)
    mono1 = np.mean([p.encoding.photometric == "MONOCHROME1" for p in plans])
    assert 0.22 < mono1 < 0.38
    assert {p.encoding.bits_stored for p in plans} == {12, 14, 16}
    assert any(p.encoding.rescale not in (None, (1.0, 0.0)) for p in plans)
    assert any(p.encoding.rescale is None for p in plans)
    assert 0.1 < np.mean([p.rle for p in plans]) < 0.9
    views = [p.view_index for p in plans]
    n_views = np.bincount(np.bincount([p.patient_index for p in plans]))
    assert n_views[0] == 0 and n_views[1] > 0 and n_views[2] > 0 and len(n_views) == 3
    assert max(views) == 1


def test_labels_follow_the_weights_block_by_block() -> None:
    synth = synth_params(n_patients=200)
    labels = assign_labels(200, synth, seed=5)
    weights = {"circumscribed": 1.0, "indistinct": 1.0, "spiculated": 1.0, "normal": 0.3}
    total = sum(weights.values())
    for start in range(0, 200, BLOCK):
        block = labels[start : start + BLOCK]
        for label, w in weights.items():
            share = BLOCK * w / total
            assert np.floor(share) <= block.count(label) <= np.ceil(share), (start, label)
    only_normal = synth_params(class_weights={"circumscribed": 0, "indistinct": 0, "spiculated": 0, "normal": 1})
    assert set(assign_labels(30, only_normal, 0)) == {NORMAL_LABEL}


def test_more_patients_leave_earlier_ones_unchanged() -> None:
    small, large = synth_params(n_patients=5), synth_params(n_patients=27)
    plans_small, plans_large = plan_views(small, 9), plan_views(large, 9)
    assert plans_large[: len(plans_small)] == plans_small
    first = render_view(plans_small[0], small, 9).presentation
    np.testing.assert_array_equal(first, render_view(plans_large[0], large, 9).presentation)


def test_pixel_encoding_inverts_monochrome1() -> None:
    p = np.array([[0.0, 0.25, 1.0]])
    assert PixelEncoding("MONOCHROME2", 12).encode(p).tolist() == [[0, 1024, 4095]]
    assert PixelEncoding("MONOCHROME1", 12).encode(p).tolist() == [[4095, 3071, 0]]
    assert PixelEncoding("MONOCHROME2", 14, (0.5, -1024.0)).modality_range() == (-1024.0, 0.5 * 16383 - 1024.0)


def test_skewed_draw_ends_and_middle() -> None:
    rng = np.random.default_rng(0)
    assert skewed_draw(rng, 3.0, 1.0, 0.0) == 3.0
    assert skewed_draw(rng, 3.0, 1.0, 1.0) == 1.0
    middle = [skewed_draw(rng, 0.0, 1.0, 0.5) for _ in range(4000)]
    assert abs(np.mean(middle) - 0.5) < 0.02 and abs(np.var(middle) - 1 / 12) < 0.01
    hard = [skewed_draw(rng, 0.0, 1.0, 0.8) for _ in range(2000)]
    assert np.mean(hard) > 0.7  # u^(1/4) has mean 4/5


def test_power_law_noise_has_the_asked_spectral_slope() -> None:
    beta = 3.0
    field = power_law_noise((256, 256), beta, np.random.default_rng(1))
    assert abs(field.mean()) < 1e-5 and abs(field.std() - 1) < 1e-4
    power = np.abs(np.fft.fft2(field)) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    band = (freq > 0.02) & (freq < 0.3)
    slope = np.polyfit(np.log(freq[band]), np.log(power[band]), 1)[0]
    assert abs(slope + beta) < 0.25


def render_isolated(margin: str, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """n masses of one class on a blank field: (intensity, roi, mean radius, contrast)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mass = draw_mass(margin, (12.0, 18.0), (0.05, 0.12), 0.5, rng)
        image = render_mass(mass, (0.0, 0.0), rng)
        out.append((image.intensity, image.roi, mass.radius, mass.contrast))
    return out


def boundary_gradient(intensity: np.ndarray, roi: np.ndarray, contrast: float) -> float:
    """Mean gradient magnitude on the ROI's inner boundary pixels, in units of contrast per pixel."""
    edge = roi & ~ndimage.binary_erosion(roi)
    gy, gx = np.gradient(intensity)
    return float(np.hypot(gx, gy)[edge].mean() / contrast)


def test_circumscribed_edges_are_sharper_than_indistinct() -> None:
    circ = [boundary_gradient(i, r, c) for i, r, _, c in render_isolated("circumscribed", 12)]
    ind = [boundary_gradient(i, r, c) for i, r, _, c in render_isolated("indistinct", 12)]
    # A Gaussian edge of std s has peak slope 1 / (s sqrt(2 pi)): s <= ~0.5 px against s >= 1.2 px.
    assert np.median(circ) > 2.0 * np.median(ind)
    assert min(circ) > max(np.percentile(ind, 75), 0.0)


def radial_line_count(intensity: np.ndarray, radius: float, contrast: float) -> int:
    """Number of separate bright runs narrower than a third of the radius met on a circle of 1.6 x the
    mean radius around the patch centre."""
    c = (intensity.shape[0] - 1) / 2.0
    theta = np.linspace(0, 2 * np.pi, 2048, endpoint=False)
    ring = ndimage.map_coordinates(intensity, [c + 1.6 * radius * np.sin(theta), c + 1.6 * radius * np.cos(theta)],
                                   order=1)
    bright = ring > 0.2 * contrast
    runs, n = ndimage.label(bright)
    if n and bright[0] and bright[-1]:
        runs[runs == runs[-1]] = runs[0]
    arc = 2 * np.pi * 1.6 * radius / len(theta)
    sizes = [np.sum(runs == k) * arc for k in np.unique(runs[runs > 0])]
    return sum(1 for s in sizes if s < radius / 3)


def test_spiculated_masses_have_thin_radial_lines() -> None:
    counts = {m: [radial_line_count(i, r, c) for i, _, r, c in render_isolated(m, 10)] for m in MARGIN_CLASSES}
    assert np.median(counts["spiculated"]) >= 8
    assert max(counts["circumscribed"]) == 0
    assert np.median(counts["indistinct"]) <= 1 and max(counts["indistinct"]) <= 4


def test_spiculated_rois_are_far_from_convex() -> None:
    def solidity(roi: np.ndarray) -> float:
        points = np.argwhere(roi)
        return float(roi.sum() / ConvexHull(points).volume)

    spic = [solidity(r) for _, r, _, _ in render_isolated("spiculated", 8)]
    circ = [solidity(r) for _, r, _, _ in render_isolated("circumscribed", 8)]
    assert max(spic) < 0.6 < 0.85 < min(circ)


def test_difficulty_lowers_contrast_and_spicule_count() -> None:
    def draw(margin: str, difficulty: float) -> list:
        rng = np.random.default_rng(2)
        return [draw_mass(margin, (12.0, 18.0), (0.05, 0.12), difficulty, rng) for _ in range(10)]

    easy, hard = draw("spiculated", 0.1), draw("spiculated", 0.9)
    assert np.mean([m.contrast for m in easy]) > np.mean([m.contrast for m in hard]) + 0.03
    assert np.mean([len(m.spicules) for m in easy]) > 1.5 * np.mean([len(m.spicules) for m in hard])
    assert np.mean([m.edge_sigma / m.radius for m in draw("indistinct", 0.1)]) > 0.2
    assert np.mean([m.edge_sigma / m.radius for m in draw("indistinct", 0.9)]) < 0.15


def test_unknown_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown margin 'round'"):
        draw_mass("round", (5.0, 6.0), (0.05, 0.1), 0.5, np.random.default_rng(0))


# --- params --------------------------------------------------------------------------------------------------


def test_yaml_defaults_equal_code_defaults() -> None:
    from fpnpipe.config import load_params

    root = Path(__file__).resolve().parents[1]
    assert load_params(root / "params.yaml").synth == Params().synth


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_patients", 0),
        ("views_per_patient", [0, 2]),
        ("views_per_patient", [3, 2]),
        ("image_shape", [64, 512]),
        ("pixel_spacing_mm", 0),
        ("monochrome1_fraction", 1.5),
        ("lesion_radius_px", [10.0, 80.0]),
        ("lesion_contrast", [0.0, 0.1]),
        ("lesion_contrast", [0.1, 0.9]),
        ("background_beta", [0.5, 3.0]),
        ("blur_sigma_px", [-1.0, 1.0]),
        ("noise", -0.1),
        ("difficulty", 1.2),
        ("out_dir", ""),
        ("n_patients", "ten"),
        ("class_weights", {"circumscribed": 0, "indistinct": 0, "spiculated": 0, "normal": 0}),
        ("colour", "blue"),
    ],
)
def test_bad_synth_values_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"synth\.{key}"):
        parse_params({"synth": {key: value}})


# --- the command --------------------------------------------------------------------------------------------


def command_app():
    from stages.cli import build_app

    return build_app()


def test_synth_command_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    synth = {**TINY, "n_patients": 3, "out_dir": "raw/synthetic"}
    params.write_text(json.dumps({"seed": {"data": 1, "train": 0}, "synth": synth}))
    result = CliRunner().invoke(command_app(), ["synth", "--params", str(params)])
    assert result.exit_code == 0, result.output
    rows = read_manifest(tmp_path / "raw/synthetic")
    assert 3 <= len(rows) <= 6
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_synth_command_refuses_bad_params(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"synth": {"noise": -1, "out_dir": str(tmp_path / "out")}}))
    result = CliRunner().invoke(command_app(), ["synth", "--params", str(params)])
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()
