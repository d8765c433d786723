"""Image and mask reading: DICOM value chain, codecs, refusals, and PNG / TIFF / PGM files.

Expected values are computed by hand (or by the DICOM formula written out here), never taken from the
reader's own output. pydicom's shipped test files are used only where they ship locally (no downloads).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit

from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.images import ImageReadError, image_shape, read_header, read_image, read_mask


def shipped(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not shipped locally")
    return Path(path)


def edit(path: Path, change) -> Path:
    """Read a DICOM, let `change(ds)` modify it, save it back."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


def refused(path: Path, **kw) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kw)
    return info.value.reason


# ---------------------------------------------------------------- value chain (hand-computed expectations)


def test_monochrome2_values_pass_through(tmp_path: Path) -> None:
    pixels = np.array([[0, 1, 65535], [300, 40000, 7]], np.uint16)
    out = read_image(write_dicom(tmp_path / "a.dcm", pixels, uid_key="a"))
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, [[0, 1, 65535], [300, 40000, 7]])


def test_monochrome1_is_inverted_within_bits_stored(tmp_path: Path) -> None:
    pixels = np.array([[0, 100], [4000, 4095]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", pixels, uid_key="m1", photometric="MONOCHROME1", bits_stored=12)
    # 12 bits stored: range [0, 4095]; inverted value = 4095 - v.
    np.testing.assert_array_equal(read_image(path), [[4095, 3995], [95, 0]])


def test_rescale_slope_intercept(tmp_path: Path) -> None:
    pixels = np.array([[0, 10, 4095]], np.uint16)
    path = write_dicom(tmp_path / "r.dcm", pixels, uid_key="r", bits_stored=12, rescale=(2.5, -100))
    np.testing.assert_allclose(read_image(path), [[-100, -75, 10137.5]])


def test_rescale_then_monochrome1_inversion(tmp_path: Path) -> None:
    pixels = np.array([[0, 10, 4095]], np.uint16)
    path = write_dicom(
        tmp_path / "rm1.dcm", pixels, uid_key="rm1", bits_stored=12, rescale=(2.5, -100), photometric="MONOCHROME1"
    )
    # Rescaled range [-100, 10137.5]; inverted = -100 + 10137.5 - (2.5 v - 100) = 10137.5 - 2.5 v.
    np.testing.assert_allclose(read_image(path), [[10137.5, 10112.5, -100.0]])


def test_signed_pixel_representation(tmp_path: Path) -> None:
    pixels = np.array([[-32768, -1000, -1], [0, 1234, 32767]], np.int16)
    out = read_image(write_dicom(tmp_path / "s.dcm", pixels, uid_key="s"))
    np.testing.assert_array_equal(out, [[-32768, -1000, -1], [0, 1234, 32767]])


def test_stored_values_above_bits_stored_are_refused(tmp_path: Path) -> None:
    # 12 bits stored, but three words use the 4 bits above HighBit: the header does not describe the data.
    pixels = np.array([[0xAFFB, 0x1005], [0x0FFF, 0xF000]], np.uint16)
    path = write_dicom(tmp_path / "g.dcm", pixels, uid_key="g", bits_stored=12)
    assert refused(path).startswith("stored values out of range: 3 of 4 pixels use bits above HighBit 11")
    rle = write_dicom(tmp_path / "g_rle.dcm", pixels, uid_key="g", bits_stored=12, rle=True)
    assert "stored values out of range: 3 of 4 pixels" in refused(rle)
    with pytest.raises(ImageReadError, match="out of range"):
        read_mask(path)


def test_high_bits_are_masked_when_an_embedded_overlay_is_declared_there(tmp_path: Path) -> None:
    # Retired DICOM usage: an overlay plane stored in bit 12 of the pixel words. The value is the low 12 bits.
    pixels = np.array([[0x1FFB, 0x1005], [0x0FFF, 0x1000]], np.uint16)
    path = write_dicom(tmp_path / "ov.dcm", pixels, uid_key="ov", bits_stored=12)

    def overlay(ds: Dataset) -> None:
        ds.add_new(0x60000010, "US", 2)
        ds.add_new(0x60000011, "US", 2)
        ds.add_new(0x60000100, "US", 16)
        ds.add_new(0x60000102, "US", 12)

    edit(path, overlay)
    np.testing.assert_array_equal(read_image(path), [[0xFFB, 0x005], [0xFFF, 0x000]])


def test_signed_12_bit_sign_extended_or_zero_high_bits(tmp_path: Path) -> None:
    # Writers leave a signed value's high bits zero or sign-extend it; both are the same 12-bit value.
    raw = np.array([[0xFFFB, 0x0005], [0x0FFF, 0xF800]], np.uint16).view(np.int16)
    out = read_image(write_dicom(tmp_path / "gs.dcm", raw, uid_key="gs", bits_stored=12))
    # 12-bit two's complement: 0xFFB = -5, 0x005 = 5, 0xFFF = -1, 0x800 = -2048.
    np.testing.assert_array_equal(out, [[-5, 5], [-1, -2048]])
    garbage = np.array([[0xAFFB, 0x0005], [0x0FFF, 0x7800]], np.uint16).view(np.int16)
    path = write_dicom(tmp_path / "gg.dcm", garbage, uid_key="gg", bits_stored=12)
    assert refused(path).startswith("stored values out of range: 2 of 4 pixels")


def _linear_window(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    # DICOM PS3.3 C.11.2.1.2.1, LINEAR window function.
    c, w = center - 0.5, width - 1
    y = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
    return np.where(x <= c - w / 2, y_min, np.where(x > c + w / 2, y_max, y))


def test_voi_window_only_when_asked(tmp_path: Path) -> None:
    values = np.array([[1000, 1536, 2048, 2400, 3000]], np.uint16)
    path = write_dicom(tmp_path / "w.dcm", values, uid_key="w", bits_stored=12, window=(2048, 1024))
    np.testing.assert_array_equal(read_image(path), values)
    expected = _linear_window(values.astype(float), 2048, 1024, 0, 4095)
    assert expected[0, 0] == 0 and expected[0, 4] == 4095  # the window clips both ends
    np.testing.assert_allclose(read_image(path, voi_window=True), expected, rtol=1e-6)


def test_voi_window_then_monochrome1(tmp_path: Path) -> None:
    values = np.array([[1000, 2048, 3000]], np.uint16)
    path = write_dicom(
        tmp_path / "w1.dcm", values, uid_key="w1", bits_stored=12, window=(2048, 1024), photometric="MONOCHROME1"
    )
    expected = 4095 - _linear_window(values.astype(float), 2048, 1024, 0, 4095)
    np.testing.assert_allclose(read_image(path, voi_window=True), expected, rtol=1e-6)


def _lut_item(first: int, data: list[int]) -> Dataset:
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [len(data), first, 16])
    item.add_new("LUTData", "US", data)
    return item


def test_voi_lut_sequence(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "v.dcm", np.array([[0, 1, 2, 3, 10]], np.uint8), uid_key="v")

    def add_lut(ds: Dataset) -> None:
        ds.VOILUTSequence = Sequence([_lut_item(1, [100, 200, 300, 400])])

    edit(path, add_lut)
    np.testing.assert_array_equal(read_image(path), [[0, 1, 2, 3, 10]])
    # Below the first mapped value -> first entry; beyond the table -> last entry (PS3.3 C.11.2.1.1).
    np.testing.assert_array_equal(read_image(path, voi_window=True), [[100, 100, 200, 300, 400]])


def test_modality_lut_sequence(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "ml.dcm", np.array([[0, 1, 2, 7]], np.uint8), uid_key="ml")

    def add_lut(ds: Dataset) -> None:
        item = _lut_item(0, [5, 50, 500])
        item.ModalityLUTType = "US"
        ds.ModalityLUTSequence = Sequence([item])

    edit(path, add_lut)
    np.testing.assert_array_equal(read_image(path), [[5, 50, 500, 500]])


# ---------------------------------------------------------------- encodings


def _ramp(shape: tuple[int, int] = (40, 30), top: int = 4096) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) * 37 % top).astype(np.uint16)


def test_rle_written_here(tmp_path: Path) -> None:
    pixels = _ramp()
    path = write_dicom(tmp_path / "rle.dcm", pixels, uid_key="rle", rle=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID.is_compressed
    np.testing.assert_array_equal(read_image(path), pixels)


def test_deflated_written_here(tmp_path: Path) -> None:
    pixels = _ramp()
    path = write_dicom(tmp_path / "dfl.dcm", pixels, uid_key="dfl")
    edit(path, lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", DeflatedExplicitVRLittleEndian))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    np.testing.assert_array_equal(read_image(path), pixels)


def test_jpeg2000_lossless_written_here(tmp_path: Path) -> None:
    pixels = _ramp((64, 64))
    path = write_dicom(tmp_path / "j2k.dcm", pixels, uid_key="j2k", bits_stored=12)
    edit(path, lambda ds: ds.compress(JPEG2000Lossless, generate_instance_uid=False))
    np.testing.assert_array_equal(read_image(path), pixels)


def test_jpeg_baseline_matches_pillow_decoding(tmp_path: Path) -> None:
    y, x = np.mgrid[:48, :40]
    pixels = (128 + 100 * np.sin(x / 5) * np.cos(y / 7)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32)
    path = write_dicom(tmp_path / "jpg.dcm", pixels, uid_key="jpg")

    def to_jpeg(ds: Dataset) -> None:
        ds.PixelData = encapsulate([buffer.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit

    edit(path, to_jpeg)
    out = read_image(path)
    # Two independent JPEG decoders (libjpeg via pylibjpeg, libjpeg-turbo via Pillow) agree to rounding.
    assert np.abs(out - reference).max() <= 2


def test_file_without_meta_header(tmp_path: Path) -> None:
    pixels = _ramp()
    ds = pydicom.dcmread(write_dicom(tmp_path / "src.dcm", pixels, uid_key="nm"))
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "nometa.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(read_image(path), pixels)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_pydicom_encodings_equal_the_uncompressed_reference(name: str) -> None:
    reference = read_image(shipped("MR_small.dcm"))
    assert reference.shape == (64, 64) and np.ptp(reference) > 0
    np.testing.assert_array_equal(read_image(shipped(name)), reference)


def test_pydicom_jpeg_extended_12_bit_decodes() -> None:
    out = read_image(shipped("JPGExtended.dcm"))
    assert out.shape == (1024, 256) and out.dtype == np.float32
    assert 0 <= out.min() < out.max() <= 4095


def test_pydicom_jpeg2000_lossy_decodes() -> None:
    out = read_image(shipped("JPEG2000.dcm"))
    assert out.shape == (1024, 256) and np.ptp(out) > 0


def test_pydicom_monochrome1_cr_with_rescale() -> None:
    path = shipped("dicomdirtests/77654033/CR1/6154")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12
    stored = ds.pixel_array.astype(np.float64)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    # Invert within the rescaled 12-bit range: slope * (4095 - v) + intercept.
    np.testing.assert_allclose(read_image(path), slope * (4095 - stored) + intercept, rtol=1e-6)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("MR_truncated.dcm", "cannot decode"),
        ("rtdose.dcm", "multi-frame"),
        ("SC_rgb_rle_2frame.dcm", "multi-frame"),
        ("rtplan.dcm", "no pixel data"),
        ("test-SR.dcm", "no pixel data"),
        ("SC_rgb_rle.dcm", "colour"),
        ("SC_rgb_jpeg_dcmtk.dcm", "colour"),
        ("examples_palette.dcm", "not grey-scale"),
        ("README.txt", "neither DICOM nor an image"),
    ],
)
def test_pydicom_files_refused_with_reason(name: str, words: str) -> None:
    assert words in refused(shipped(name))


def test_missing_empty_and_junk_files(tmp_path: Path) -> None:
    assert refused(tmp_path / "absent.dcm") == "file not found"
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert "empty" in refused(tmp_path / "empty.dcm")
    (tmp_path / "notes.png").write_text("this is not an image\n" * 20)
    assert "neither DICOM nor an image" in refused(tmp_path / "notes.png")
    assert refused(tmp_path) == "file is a directory, not a file"


def test_symlink_loop_and_broken_link_get_their_reason(tmp_path: Path) -> None:
    (tmp_path / "a.dcm").symlink_to(tmp_path / "b.dcm")
    (tmp_path / "b.dcm").symlink_to(tmp_path / "a.dcm")
    assert refused(tmp_path / "a.dcm") == "file is a symbolic link loop"
    (tmp_path / "c.dcm").symlink_to(tmp_path / "gone.dcm")
    assert refused(tmp_path / "c.dcm") == "file is a broken symbolic link (its target is missing)"
    with pytest.raises(ImageReadError, match="symbolic link loop"):
        read_mask(tmp_path / "a.dcm")


def test_truncated_dicom_written_here(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "t.dcm", _ramp((64, 64)), uid_key="t")
    path.write_bytes(path.read_bytes()[:-1000])
    assert "cannot decode" in refused(path)


def _jpeg_dicom(path: Path, codestream: bytes, pixels: np.ndarray) -> Path:
    write_dicom(path, pixels, uid_key=path.name)

    def to_jpeg(ds: Dataset) -> None:
        ds.PixelData = encapsulate([codestream])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit

    return edit(path, to_jpeg)


@pytest.mark.parametrize("kept", [0.5, 0.95])
def test_truncated_baseline_jpeg_is_refused_not_filled_in(tmp_path: Path, kept: float) -> None:
    y, x = np.mgrid[:256, :200]
    pixels = (128 + 100 * np.sin(x / 5) * np.cos(y / 7)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    whole = buffer.getvalue()
    # The complete codestream reads (the decoder is not what refuses the cut one) ...
    assert read_image(_jpeg_dicom(tmp_path / "whole.dcm", whole, pixels)).shape == (256, 200)
    # ... and the cut one, which decoders fill in without a word, is refused.
    path = _jpeg_dicom(tmp_path / "cut.dcm", whole[: int(len(whole) * kept)], pixels)
    assert refused(path).startswith("incomplete compressed pixel data (JPEG Baseline (Process 1))")


def test_jpeg2000_decode_failure_reason_is_byte_stable(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "j2k.dcm", _ramp((64, 64)), uid_key="j2k", bits_stored=12)
    edit(path, lambda ds: ds.compress(JPEG2000Lossless, generate_instance_uid=False))
    ds = pydicom.dcmread(path)
    (frame,) = list(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:40] + b"\x55" * (len(frame) - 42) + b"\xff\xd9"])  # junk, end marker kept
    ds.save_as(path)
    reasons = {refused(path) for _ in range(3)}  # the decoders' texts name a new object (address) each time
    (reason,) = reasons
    assert reason.startswith("cannot decode pixel data (JPEG 2000 Image Compression (Lossless Only))")
    assert "<_io.BytesIO object>" in reason and "0x" not in reason


def _corrupt_rows(tmp_path: Path, name: str, change) -> Path:
    path = write_dicom(tmp_path / f"{name}.dcm", _ramp((64, 64)), uid_key=name)
    data = bytearray(path.read_bytes())
    at = data.find(b"\x28\x00\x10\x00US")  # (0028,0010) Rows, explicit VR little endian
    assert at > 0
    change(data, at)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("name", "change", "words"),
    [
        ("len4", lambda d, i: d.__setitem__(slice(i + 6, i + 8), b"\x04\x00"), "value length 4"),
        ("len512", lambda d, i: d.__setitem__(slice(i + 6, i + 8), b"\x00\x02"), "value length 512"),
        ("len0", lambda d, i: d.__setitem__(slice(i + 6, i + 8), b"\x00\x00"), "no value"),
        ("vrXX", lambda d, i: d.__setitem__(slice(i + 4, i + 6), b"XX"), "value representation 'XX'"),
        ("vrUT", lambda d, i: d.__setitem__(slice(i + 4, i + 6), b"UT"), "value representation 'UT'"),
    ],
)
def test_corrupt_rows_element_is_named_not_taken_for_missing_pixels(tmp_path: Path, name, change, words) -> None:
    path = _corrupt_rows(tmp_path, name, change)
    reason = refused(path)
    assert reason.startswith("corrupt header element (0028,0010) Rows") and words in reason
    with pytest.raises(ImageReadError, match=r"corrupt header element \(0028,0010\) Rows"):
        image_shape(path)


def test_zero_size_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "z.dcm", np.zeros((0, 5), np.uint16), uid_key="z")
    assert "zero-size" in refused(path)


def test_error_names_file_and_reason(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "absent.dcm")
    assert str(tmp_path / "absent.dcm") in str(info.value) and info.value.path == tmp_path / "absent.dcm"


# ---------------------------------------------------------------- headers


def test_header_only_query_and_no_identifying_fields(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "h.dcm", _ramp((50, 20)), uid_key="h", pixel_spacing_mm=0.07, laterality="R")
    path.write_bytes(path.read_bytes()[:-500])  # damaged pixels: a header-only read must not notice
    assert image_shape(path) == (50, 20)
    header = read_header(path)
    assert header.pixel_spacing_mm == (0.07, 0.07) and header.laterality == "R"
    assert header.photometric == "MONOCHROME2"
    assert set(vars(header)) == {"shape", "photometric", "pixel_spacing_mm", "laterality"}
    assert "Phantom" not in repr(header) and "fpnpipe phantom clinic" not in repr(header)


def test_header_refuses_multi_frame_and_non_images() -> None:
    with pytest.raises(ImageReadError, match="multi-frame"):
        image_shape(shipped("rtdose.dcm"))
    with pytest.raises(ImageReadError, match="not an image"):
        image_shape(shipped("rtplan.dcm"))


# ---------------------------------------------------------------- PNG / TIFF / PGM


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_raster_16_bit(tmp_path: Path, suffix: str) -> None:
    pixels = np.array([[0, 1, 255], [256, 40000, 65535]], np.uint16)
    path = tmp_path / f"r16{suffix}"
    Image.fromarray(pixels).save(path)
    out = read_image(path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1, 255], [256, 40000, 65535]])
    assert image_shape(path) == (2, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_raster_8_bit(tmp_path: Path, suffix: str) -> None:
    pixels = np.array([[0, 17], [128, 255]], np.uint8)
    path = tmp_path / f"r8{suffix}"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(read_image(path), [[0, 17], [128, 255]])


def test_raster_grey_stored_as_rgb_is_accepted(tmp_path: Path) -> None:
    grey = np.array([[0, 90], [200, 255]], np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)


def test_raster_colour_refused(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    assert "colour" in refused(tmp_path / "red.png")


def test_raster_multi_page_tiff_refused(tmp_path: Path) -> None:
    pages = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (1, 2)]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    assert "multi-page" in refused(tmp_path / "two.tif")


def test_raster_truncated_png_refused(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "n.png")
    data = (tmp_path / "n.png").read_bytes()
    (tmp_path / "n.png").write_bytes(data[: len(data) // 2])
    assert "truncated or unreadable" in refused(tmp_path / "n.png")


# ---------------------------------------------------------------- masks


def test_mask_png_0_255(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, True], [True, False]])


def test_mask_dicom_uses_stored_values_even_for_monochrome1(tmp_path: Path) -> None:
    stored = np.array([[0, 1, 1], [0, 0, 1]], np.uint8)
    path = write_dicom(tmp_path / "m.dcm", stored, uid_key="m", photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_mask(path), stored == 1)


def test_mask_rle_dicom(tmp_path: Path) -> None:
    stored = np.zeros((30, 20), np.uint8)
    stored[5:12, 3:9] = 255
    path = write_dicom(tmp_path / "mr.dcm", stored, uid_key="mr", rle=True)
    np.testing.assert_array_equal(read_mask(path), stored > 0)


def test_mask_not_binary_refused(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 128, 255]], np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(ImageReadError, match="mask is not binary"):
        read_mask(tmp_path / "grey.png")


def test_mask_without_zero_level_refused(tmp_path: Path) -> None:
    Image.fromarray(np.array([[1, 255]], np.uint8)).save(tmp_path / "nz.png")
    with pytest.raises(ImageReadError, match="one of the two must be 0"):
        read_mask(tmp_path / "nz.png")


def test_mask_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        read_mask(tmp_path / "nothing.png")
