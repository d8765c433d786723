"""Read single-frame grey-scale DICOM images into presentation space, where higher = denser / brighter.

The value chain follows DICOM PS3.4 Annex N.2 (grey-scale pipeline): stored values (BitsStored,
PixelRepresentation; pydicom masks the unused high bits and sign-extends) -> Modality LUT (rescale
slope / intercept or a Modality LUT Sequence) -> optional VOI LUT (window centre / width or a VOI LUT
Sequence) -> MONOCHROME1 inversion. Only pixels and a few harmless header facts (shape, photometric
interpretation, pixel spacing, laterality) ever leave this module: never a name, date, accession or
institution.

Pixels that cannot be trusted are refused (ImageReadError) rather than passed on:

- a corrupt Image Pixel module element (e.g. a Rows element of the wrong length or VR) is named as such,
  not mistaken for a missing pixel data element;
- compressed pixel data that ends before its codestream does (JPEG / JPEG-LS / JPEG 2000 without the
  end-of-image marker: a truncated file whose missing rows a decoder would fill in silently), or that
  decodes to another size than Rows x Columns;
- stored values outside BitsStored. DICOM PS3.5 8.1.1 says the bits above HighBit are not part of the
  value, and pydicom masks them off. When they are set in the file, though, the header almost always
  misdescribes the data (16-bit values labelled 12-bit): masking would wrap those intensities into a
  plausible-looking but wrong image. So such a file is refused with the count of affected pixels, unless
  the header declares an overlay plane embedded in those bits (the retired 60xx,0102 Overlay Bit
  Position), in which case the bits are masked off per the standard.

A constant image (e.g. RescaleSlope 0) is refused where intensities are normalised
(`fpnpipe.data.intensity`), since it depends on the percentiles used.

Use `fpnpipe.data.images` (read_image, read_mask, read_header), which also reads PNG / TIFF / PGM; this
module is its DICOM half.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from fpnpipe.reasons import exception_reason, stable_reason

T = TypeVar("T")

GREY_PHOTOMETRIC: tuple[str, ...] = ("MONOCHROME1", "MONOCHROME2")
_first_line = exception_reason  # an exception as a one-line, byte-stable reason
_LUT_MAX_ENTRIES = 1 << 16
"""Stored ranges up to this many values are mapped through a precomputed float32 table (no float64 image)."""


class ImageReadError(Exception):
    """An image or mask file that cannot be used; `reason` is a short human sentence for reports."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = stable_reason(reason)
        super().__init__(f"{path}: {self.reason}")


@dataclass(frozen=True)
class ImageHeader:
    """The header facts fpnpipe may use: (rows, cols), photometric interpretation, pixel spacing in mm
    (row, col) if the file states one, and image laterality (L / R) if stated. Nothing identifying."""

    shape: tuple[int, int]
    photometric: str
    pixel_spacing_mm: tuple[float, float] | None = None
    laterality: str | None = None


def has_dicom_preamble(path: Path) -> bool:
    """True if the file carries the 128-byte preamble followed by b'DICM' (DICOM PS3.10 file format)."""
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _describe(ds: Dataset) -> str:
    """What a non-image object is, for messages: SOP class name and modality (both non-identifying)."""
    parts = []
    if "SOPClassUID" in ds:
        parts.append(str(getattr(ds.SOPClassUID, "name", ds.SOPClassUID)))
    if ds.get("Modality"):
        parts.append(f"modality {ds.Modality}")
    return ", ".join(parts) or "unknown object"


def _frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


# Header checks in order: (is this a problem?, reason). Each predicate sees only header elements.
_HEADER_CHECKS: tuple[tuple[Callable[[Dataset], bool], Callable[[Dataset], str]], ...] = (
    (
        lambda ds: "Rows" not in ds or "Columns" not in ds,
        lambda ds: f"not an image: no Rows / Columns ({_describe(ds)})",
    ),
    (
        lambda ds: _frames(ds) > 1,
        lambda ds: f"multi-frame image ({_frames(ds)} frames); only single-frame images are read",
    ),
    (
        lambda ds: int(ds.get("SamplesPerPixel") or 1) != 1,
        lambda ds: f"colour image (SamplesPerPixel {ds.SamplesPerPixel}, {ds.get('PhotometricInterpretation')}); "
        "only grey-scale images are read",
    ),
    (
        lambda ds: str(ds.get("PhotometricInterpretation", "")).strip() not in GREY_PHOTOMETRIC,
        lambda ds: f"photometric interpretation {ds.get('PhotometricInterpretation')!r} is not grey-scale "
        "(MONOCHROME1 / MONOCHROME2)",
    ),
    (
        lambda ds: int(ds.Rows or 0) == 0 or int(ds.Columns or 0) == 0,
        lambda ds: f"zero-size image ({ds.Rows} x {ds.Columns})",
    ),
)


def _check_header(path: Path, ds: Dataset) -> None:
    """Raise ImageReadError with the first header problem: not an image, multi-frame, colour, zero size."""
    try:
        for is_problem, reason in _HEADER_CHECKS:
            if is_problem(ds):
                raise ImageReadError(path, reason(ds))
    except ImageReadError:
        raise
    except Exception as exc:  # a value pydicom cannot convert raises anything from ValueError to KeyError
        raise ImageReadError(path, f"malformed image header ({_first_line(exc)})") from None


# Image Pixel module elements read here, each a single US value (2 bytes) in a valid file.
_PIXEL_MODULE_US: tuple[tuple[int, str], ...] = (
    (0x00280002, "SamplesPerPixel"),
    (0x00280010, "Rows"),
    (0x00280011, "Columns"),
    (0x00280100, "BitsAllocated"),
    (0x00280101, "BitsStored"),
    (0x00280102, "HighBit"),
    (0x00280103, "PixelRepresentation"),
)
_PIXEL_MODULE_OTHER: tuple[tuple[int, str], ...] = (
    (0x00280004, "PhotometricInterpretation"),
    (0x00280008, "NumberOfFrames"),
)


def _corrupt_element(ds: Dataset) -> str | None:
    """The first corrupt Image Pixel module element, in words, or None: a US element whose VR is not US or
    whose value is not exactly one 2-byte number (a damaged length also throws the parser off, so that the
    pixel data seems missing), or any of these elements whose value pydicom cannot convert."""
    for tag, name in _PIXEL_MODULE_US + _PIXEL_MODULE_OTHER:
        if tag not in ds:
            continue
        where = f"corrupt header element ({tag >> 16:04X},{tag & 0xFFFF:04X}) {name}"
        raw = ds.get_item(tag)
        single_us = (tag, name) in _PIXEL_MODULE_US
        vr, length = getattr(raw, "VR", None), getattr(raw, "length", None)
        if single_us and vr is not None and vr != "US":
            return f"{where}: value representation {vr!r} where US is required"
        if single_us and length is not None and length != 2:
            return f"{where}: value length {length} where one US value takes 2 bytes"
        try:
            value = ds[tag].value
        except Exception as exc:  # any conversion failure means the element is corrupt
            return f"{where} ({_first_line(exc)})"
        if single_us and not isinstance(value, int):
            return f"{where}: {'no value' if value is None else 'not a single number'} where one US value is required"
    return None


def load_dicom(path: Path, *, pixels: bool) -> Dataset:
    """Parse a DICOM file (with or without the PS3.10 meta header) and check it is a single grey frame.

    pixels=False stops before the pixel data (header only). Raises ImageReadError.
    """
    preamble = has_dicom_preamble(path)
    try:
        with warnings.catch_warnings():
            # Forced reads of damaged files warn per element; the refusal below says what matters.
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises many types on corrupt input; each becomes a reason
        kind = "unreadable DICOM file" if preamble else "neither DICOM nor an image Pillow can read"
        raise ImageReadError(path, f"{kind} ({_first_line(exc)})") from None
    if not preamble and not any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "PixelData")):
        # A forced read of a file that is not DICOM yields junk elements, never these.
        raise ImageReadError(path, "neither DICOM nor an image Pillow can read (PNG / TIFF / PGM)")
    corrupt = _corrupt_element(ds)
    if corrupt is not None:
        raise ImageReadError(path, corrupt)
    if pixels and "PixelData" not in ds:
        raise ImageReadError(path, f"no pixel data: not an image ({_describe(ds)})")
    _check_header(path, ds)
    _set_missing_transfer_syntax(ds)
    return ds


_NATIVE_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
"""(implicit VR, little endian) as parsed -> the uncompressed transfer syntax it means."""


def _set_missing_transfer_syntax(ds: Dataset) -> None:
    """A file without a meta header (or without a Transfer Syntax UID in it) is uncompressed in the encoding
    pydicom detected while parsing; record it so that pydicom can decode the pixels."""
    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit_vr, little_endian = ds.original_encoding
    syntax = _NATIVE_SYNTAX.get((bool(implicit_vr), bool(little_endian)))
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax


def dicom_header(path: Path) -> ImageHeader:
    """Header-only facts of a DICOM image (pixel data is not read). Raises ImageReadError."""
    ds = load_dicom(path, pixels=False)
    spacing = None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            if value is not None and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
                spacing = (float(value[0]), float(value[1]))
                break
        except (TypeError, ValueError):
            continue
    laterality = str(ds.get("ImageLaterality") or ds.get("Laterality") or "").strip() or None
    return ImageHeader(
        shape=(int(ds.Rows), int(ds.Columns)),
        photometric=str(ds.PhotometricInterpretation).strip(),
        pixel_spacing_mm=spacing,
        laterality=laterality,
    )


_MARKER_TERMINATED = frozenset(JPEGTransferSyntaxes) | frozenset(JPEGLSTransferSyntaxes) | frozenset(
    JPEG2000TransferSyntaxes
)
"""Encapsulated transfer syntaxes whose codestream ends with the marker FF D9 (JPEG and JPEG-LS EOI,
JPEG 2000 EOC)."""
_END_MARKER = b"\xff\xd9"


def _check_complete(path: Path, ds: Dataset) -> None:
    """Refuse JPEG-family pixel data whose codestream lacks its end marker: the file was cut short, and
    decoders fill in the missing rows instead of failing. Writers pad a frame after the marker with 00 or
    FF bytes; FF D9 cannot occur inside entropy-coded JPEG data or JPEG 2000 packets."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax not in _MARKER_TERMINATED:
        return
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as exc:  # malformed encapsulation raises ValueError, KeyError, struct.error ...
        raise ImageReadError(path, f"malformed compressed pixel data ({syntax.name}): {_first_line(exc)}") from None
    if not frame.rstrip(b"\x00\xff").endswith(_END_MARKER):
        raise ImageReadError(
            path,
            f"incomplete compressed pixel data ({syntax.name}): the codestream ends without its end marker "
            f"after {len(frame)} bytes (a truncated file; a decoder would fill in the missing rows)",
        )


def _embedded_overlay_at_or_above(ds: Dataset, bits: int) -> bool:
    """True if the header declares an overlay plane stored inside the pixel data in a bit at or above
    `bits` (retired usage: 60xx,0102 Overlay Bit Position, without separate 60xx,3000 Overlay Data)."""
    for group in range(0x6000, 0x6020, 2):
        position = ds.get((group, 0x0102))
        try:
            if position is not None and (group, 0x3000) not in ds and int(position.value) >= bits:
                return True
        except (TypeError, ValueError):
            continue
    return False


def _within_bits_stored(path: Path, ds: Dataset, arr: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """(H, W) stored values with the bits above HighBit removed (PS3.5 8.1.1), after refusing a file whose
    stored words use those bits (see the module docstring). A signed value's high bits may be all zero or
    a sign extension; nothing else. Also the values' (min, max) when they were computed on the way."""
    bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
    width = arr.dtype.itemsize * 8
    if bits >= width:
        return arr, None
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    if arr.size and arr.dtype.kind == ("i" if signed else "u"):
        # The common case in two reductions, no temporary: every value already in the range of BitsStored
        # (high bits zero, or a sign extension), and then removing the high bits changes nothing.
        low, high_end = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        data = (int(arr.min()) if signed else 0, int(arr.max()))  # unsigned: one reduction, the minimum is >= 0
        if data[0] >= low and data[1] <= high_end:
            return arr, data
    words = arr.view(arr.dtype.str.replace("i", "u"))
    high = words >> bits
    legal = high == 0
    if signed:
        sign = ((words >> (bits - 1)) & 1).astype(bool)
        legal |= (high == (1 << (width - bits)) - 1) & sign
    bad = int(legal.size - np.count_nonzero(legal))
    if bad and not _embedded_overlay_at_or_above(ds, bits):
        raise ImageReadError(
            path,
            f"stored values out of range: {bad} of {legal.size} pixels use bits above HighBit {bits - 1} "
            f"(BitsStored {bits}); the header does not describe the pixel data, and masking those bits "
            "would wrap the intensities",
        )
    out = arr if arr.flags.writeable else arr.copy()
    shift = width - bits
    np.left_shift(out, shift, out=out)
    np.right_shift(out, shift, out=out)  # arithmetic for signed types: sign-extends
    return out, None


def _decode(path: Path, ds: Dataset) -> np.ndarray:
    """(H, W) integer stored values within BitsStored (unused high bits removed)."""
    return _decode_with_range(path, ds)[0]


def _decode_with_range(path: Path, ds: Dataset) -> tuple[np.ndarray, tuple[int, int] | None]:
    """_decode, and the stored values' (min, max) when the BitsStored check computed them."""
    _check_complete(path, ds)
    try:
        ds.pixel_array_options(correct_unused_bits=False)  # the raw words: _within_bits_stored checks them
        arr = ds.pixel_array
    except Exception as exc:  # decoder plugins raise anything from ValueError to RuntimeError
        name = getattr(ds.file_meta.get("TransferSyntaxUID"), "name", "unknown transfer syntax")
        raise ImageReadError(path, f"cannot decode pixel data ({name}): {_first_line(exc)}") from None
    if arr.shape != (int(ds.Rows), int(ds.Columns)):
        raise ImageReadError(path, f"decoded pixels have shape {arr.shape}, header says {ds.Rows} x {ds.Columns}")
    return _within_bits_stored(path, ds, arr)


def dicom_stored(path: Path) -> np.ndarray:
    """(H, W) raw stored values of a single grey frame (no LUTs, no inversion): what masks are read as."""
    return _decode(path, load_dicom(path, pixels=True))


def _stored_range(ds: Dataset, stored: np.ndarray, data: tuple[int, int] | None = None) -> tuple[int, int]:
    """[lo, hi] that the stored values can take (PixelRepresentation, BitsStored), widened to the data
    (their (min, max) `data`, computed here if not given)."""
    bits = int(ds.get("BitsStored") or stored.dtype.itemsize * 8)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    # Decoders occasionally disagree with the header (e.g. JPEG 2000 precision); keep every value mappable.
    data_lo, data_hi = data if data is not None else (int(stored.min()), int(stored.max()))
    return min(lo, data_lo), max(hi, data_hi)


def _luts(values: np.ndarray, ds: Dataset, voi_window: bool) -> np.ndarray:
    """Modality LUT, then the VOI LUT if asked (PS3.4 N.2.1.1): pydicom's implementations."""
    out = apply_modality_lut(values, ds)
    return apply_voi_lut(out, ds) if voi_window else out


def _presentation_table(
    path: Path, ds: Dataset, stored: np.ndarray, voi_window: bool, data: tuple[int, int] | None = None
) -> tuple[np.ndarray, int] | None:
    """(table, lo): the float32 presentation value of every stored value v in [lo, lo + len(table)) at
    table[v - lo], MONOCHROME1 inverted within the range the values can take, so bright = dense for both
    photometric interpretations; None when the range is wider than 16 bits (not mammography). data: the
    stored values' (min, max) if known."""
    lo, hi = _stored_range(ds, stored, data)
    if hi - lo >= _LUT_MAX_ENTRIES:
        return None
    invert = str(ds.PhotometricInterpretation).strip() == "MONOCHROME1"
    try:
        table = _luts(np.arange(lo, hi + 1, dtype=np.int64), ds, voi_window).astype(np.float32)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ImageReadError(path, f"invalid Modality / VOI LUT in the header ({_first_line(exc)})") from None
    if invert:
        table = (table.min() + table.max()) - table
    return table, lo


def _table_index(stored: np.ndarray, lo: int) -> np.ndarray:
    """Indices into a _presentation_table: the stored values themselves when lo is 0."""
    if lo == 0:
        return stored
    index = stored.astype(np.int32)
    index -= lo
    return index


def _presentation(path: Path, ds: Dataset, stored: np.ndarray, voi_window: bool) -> np.ndarray:
    """(H, W) float32 presentation values from (H, W) stored values (see _presentation_table)."""
    lut = _presentation_table(path, ds, stored, voi_window)
    if lut is not None:
        table, lo = lut
        return np.take(table, _table_index(stored, lo))
    # Wider than 16 bits (not mammography): map directly; the range comes from the end points.
    lo, hi = _stored_range(ds, stored)
    invert = str(ds.PhotometricInterpretation).strip() == "MONOCHROME1"
    try:
        ends = _luts(np.array([lo, hi], dtype=np.int64), ds, voi_window)
        image = _luts(stored, ds, voi_window).astype(np.float32)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ImageReadError(path, f"invalid Modality / VOI LUT in the header ({_first_line(exc)})") from None
    if invert:
        image = np.float32(ends.min() + ends.max()) - image
    return image


def read_dicom_image(path: Path, *, voi_window: bool = False) -> np.ndarray:
    """(H, W) float32 presentation-space pixels of a single-frame grey DICOM. Raises ImageReadError."""
    ds = load_dicom(path, pixels=True)
    stored = _decode(path, ds)
    return _presentation(path, ds, stored, voi_window)


def read_dicom_normalised(
    path: Path, normalise: Callable[[np.ndarray, np.ndarray], T], *, voi_window: bool = False
) -> T:
    """normalise(index, table): the image's presentation values normalised without building them first,
    where table[index] = read_dicom_image(path) (fpnpipe.data.intensity.normalize_through_table)."""
    ds = load_dicom(path, pixels=True)
    stored, data = _decode_with_range(path, ds)
    lut = _presentation_table(path, ds, stored, voi_window, data)
    if lut is None:
        image = _presentation(path, ds, stored, voi_window)
        return normalise(np.arange(image.size).reshape(image.shape), image.ravel())
    table, lo = lut
    return normalise(_table_index(stored, lo), table)
