"""Benchmark: preprocessing of N full-size mammograms against pydicom's own decode of the same files, in the
same process.

The files are synthetic full-field mammograms of 4096 x 3328 16-bit pixels (12 bits stored, a breast on air,
tissue texture and quantum noise), every other one RLE Lossless compressed, written by
fpnpipe.data.dicom_write. Per file, alternately:
  * decode: `pydicom.dcmread(path).pixel_array`, the baseline;
  * preprocess: `crop_lesions`, what the preprocess stage runs per image: read and check the file, decode,
    the BitsStored check, Modality LUT / MONOCHROME1 handling, the percentile normalisation, and the crop of
    one lesion (a box annotation: no mask file to read) resized to 224 px.
Files are read once before timing, so both find them in the page cache. Prints the time per image of both,
the process's resident memory (RSS) and its peak (high-water mark) after the first image and after all N,
and, last, `preprocess vs decode <x>` (total preprocessing time / total decode time). Targets: <= 1.5x, and
a peak that does not grow with N.

    python bench/preprocess.py            # N = 6, about a minute
    python bench/preprocess.py --n 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from fpnpipe.config import CropParams
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.lesion_crops import ImageJob, crop_lesions
from fpnpipe.data.records import LesionRow

ROWS, COLS = 4096, 3328


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="mammograms (default 6; every other one RLE)")
    parser.add_argument("--crop-size", type=int, default=224)
    return parser.parse_args(argv)


def mammogram(seed: int) -> np.ndarray:
    """(ROWS, COLS) uint16, 12 bits stored: a half-ellipse of tissue on air, texture and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ROWS:8, 0:COLS:8].astype(np.float32)
    breast = ((yy - ROWS / 2) / (ROWS * 0.45)) ** 2 + (xx / (COLS * 0.8)) ** 2 < 1
    coarse = rng.normal(0, 1, breast.shape).astype(np.float32)
    for _ in range(3):  # a cheap low-pass: smooth tissue variations
        coarse = (coarse + np.roll(coarse, 1, 0) + np.roll(coarse, 1, 1) + np.roll(coarse, -1, 0)) / 4
    tissue = np.where(breast, 1800 + 600 * coarse, 80).astype(np.float32)
    full = np.repeat(np.repeat(tissue, 8, axis=0), 8, axis=1)
    full += rng.normal(0, 25, full.shape).astype(np.float32) * (full > 100)
    return np.clip(full, 0, 4095).astype(np.uint16)


def rss_mb() -> tuple[float, float]:
    """(resident, peak resident) memory of this process in MB (/proc/self/status VmRSS, VmHWM)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    crop = CropParams(size=args.crop_size)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(args.n):
            paths.append(write_dicom(Path(folder) / f"m{i}.dcm", mammogram(i), uid_key=f"bench{i}", bits_stored=12,
                                     photometric="MONOCHROME1" if i % 4 == 3 else "MONOCHROME2", rle=i % 2 == 1,
                                     pixel_spacing_mm=0.07))
        for p in paths:  # into the page cache
            p.read_bytes()
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM): writing the files is not measured
        sizes = ", ".join(f"{p.stat().st_size / 2**20:.1f}" for p in paths)
        print(f"{args.n} mammograms of {COLS} x {ROWS} x 16 bit (12 stored), every other one RLE: {sizes} MB",
              flush=True)
        decode_times, preprocess_times = [], []
        memory: list[tuple[float, float]] = []
        for i, path in enumerate(paths):
            start = time.perf_counter()
            pixels = pydicom.dcmread(path).pixel_array
            decode_times.append(time.perf_counter() - start)
            del pixels
            row = LesionRow(source="bench", row=i + 1, image_path=path, patient_id=f"P{i}", image_id=f"I{i}",
                            label="spiculated", box=(1400.0, 1800.0, 1700.0, 2100.0))
            job = ImageJob(image_path=path, image_id=f"I{i}", patient_id=f"P{i}", split="train", lesions=(row,),
                           normal_rows=())
            start = time.perf_counter()
            result = crop_lesions(job, crop, voi_window=False, percentiles=(0.5, 99.5))
            preprocess_times.append(time.perf_counter() - start)
            if result.rejections or len(result.crops) != 1:
                raise SystemExit(f"{path.name}: preprocessing refused the lesion: {result.rejections}")
            memory.append(rss_mb())
            kind = "RLE" if i % 2 else "raw"
            print(f"image {i + 1} ({kind}): decode {decode_times[-1] * 1000:.0f} ms, preprocess "
                  f"{preprocess_times[-1] * 1000:.0f} ms; RSS {memory[-1][0]:.0f} MB, peak {memory[-1][1]:.0f} MB",
                  flush=True)
    for kind, sel in (("raw", slice(0, None, 2)), ("RLE", slice(1, None, 2))):
        d, p = np.sum(decode_times[sel]), np.sum(preprocess_times[sel])
        print(f"{kind}: decode {d / len(decode_times[sel]) * 1000:.0f} ms per image, preprocess "
              f"{p / len(preprocess_times[sel]) * 1000:.0f} ms per image ({p / d:.2f}x)")
    print(f"RSS after 1 image {memory[0][0]:.0f} MB (peak {memory[0][1]:.0f} MB), after {args.n} images "
          f"{memory[-1][0]:.0f} MB (peak {memory[-1][1]:.0f} MB)")
    ratio = float(np.sum(preprocess_times) / np.sum(decode_times))
    print(f"preprocess vs decode {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
