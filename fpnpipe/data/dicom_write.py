"""Write single-frame grey-scale mammography DICOM files (used by the synthetic phantoms and the tests).

Everything in the file is a function of the arguments: UIDs derive from `uid_key`, dates are fixed, so the
same call writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid

# DICOM PS3.4: Digital Mammography X-Ray Image Storage - For Presentation.
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"


@dataclass(frozen=True)
class Identity:
    """Header fields that identify a person. fpnpipe reads none of them into any output; the synthetic
    files carry fake values so tests can prove that."""

    patient_name: str = "Phantom^Anonymous"
    patient_id: str = "PHANTOM"
    birth_date: str = "19700101"
    accession: str = "ACC0000"
    institution: str = "fpnpipe phantom clinic"


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    uid_key: str,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    pixel_spacing_mm: float | None = None,
    rle: bool = False,
    identity: Identity = Identity(),
    laterality: str = "L",
    view: str = "CC",
    modality: str = "MG",
) -> Path:
    """Write `pixels` (H, W) uint16 / int16 / uint8 as one DICOM frame; returns the path.

    rescale: (slope, intercept) written as the Modality LUT; window: (center, width) as the VOI LUT;
    bits_stored defaults to the dtype's width; rle=True encodes with RLE Lossless.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint16, np.int16, np.uint8):
        raise ValueError(f"pixels must be a 2-D uint8 / uint16 / int16 array, got {pixels.dtype} {pixels.shape}")
    bits_allocated = pixels.dtype.itemsize * 8
    bits_stored = bits_allocated if bits_stored is None else bits_stored

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MG_FOR_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_key, "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_key, "series"])
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20200101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality = modality
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.AccessionNumber = identity.accession
    ds.InstitutionName = identity.institution
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    ds.Manufacturer = "fpnpipe"
    ds.InstanceNumber = 1

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    if rescale is not None:
        ds.RescaleSlope = f"{rescale[0]:g}"
        ds.RescaleIntercept = f"{rescale[1]:g}"
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    if pixel_spacing_mm is not None:
        ds.PixelSpacing = [f"{pixel_spacing_mm:g}", f"{pixel_spacing_mm:g}"]
        ds.ImagerPixelSpacing = [f"{pixel_spacing_mm:g}", f"{pixel_spacing_mm:g}"]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if rle:
        ds.compress(RLELossless, generate_instance_uid=False)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
