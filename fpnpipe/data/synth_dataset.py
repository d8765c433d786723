"""Writing the built-in synthetic dataset as files: one DICOM per planned view, a PNG ROI mask per lesion,
and manifest.csv in the generic manifest format, into one folder written atomically. Same params, same bytes."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from fpnpipe.atomic import atomic_dir
from fpnpipe.config import SynthParams
from fpnpipe.data.dicom_write import write_dicom
from fpnpipe.data.synthetic import LABELS, plan_views, render_view
from fpnpipe.log import progress

MANIFEST_COLUMNS = ("image_path", "patient_id", "label", "roi_mask_path")


def write_dataset(out_dir: Path, synth: SynthParams, seed: int) -> dict[str, int]:
    """Render every planned view and write the whole folder atomically; returns images per label."""
    plans = plan_views(synth, seed)
    rows: list[dict[str, str]] = []
    with atomic_dir(out_dir) as tmp, progress() as bar:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        task = bar.add_task("synth", total=len(plans))
        for plan in plans:
            view = render_view(plan, synth, seed)
            image_rel = f"images/{plan.image_id}.dcm"
            stored = plan.encoding.encode(view.presentation)
            write_dicom(
                tmp / image_rel,
                stored,
                uid_key=f"fpnpipe-synth/{seed}/{plan.image_id}",
                photometric=plan.encoding.photometric,
                bits_stored=plan.encoding.bits_stored,
                rescale=plan.encoding.rescale,
                window=_full_window(plan.encoding.modality_range()) if plan.window else None,
                pixel_spacing_mm=synth.pixel_spacing_mm,
                rle=plan.rle,
                identity=plan.identity,
                laterality=plan.laterality,
                view=plan.view,
            )
            mask_rel = ""
            if view.roi is not None:
                mask_rel = f"masks/{plan.image_id}_roi.png"
                write_mask_png(tmp / mask_rel, view.roi)
            rows.append(
                {"image_path": image_rel, "patient_id": plan.patient_id, "label": plan.label, "roi_mask_path": mask_rel}
            )
            bar.advance(task)
        (tmp / "manifest.csv").write_text(manifest_text(rows), encoding="utf-8")
    counts = Counter(row["label"] for row in rows)
    return {label: counts.get(label, 0) for label in LABELS}


def _full_window(modality_range: tuple[float, float]) -> tuple[float, float]:
    """A VOI window (centre, width) spanning the whole modality range: harmless if a reader applies it."""
    low, high = modality_range
    return (low + high) / 2.0, high - low


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write a (H, W) bool mask as an 8-bit 0/255 greyscale PNG."""
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path, format="PNG")


def manifest_text(rows: list[dict[str, str]]) -> str:
    """The manifest CSV (header + rows, '\\n' line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
