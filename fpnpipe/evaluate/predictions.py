"""reports/predictions.csv: one row per test crop with its probabilities, so that every classification
value of reports/metrics.json can be recomputed by a user (e.g. with scikit-learn)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpnpipe.classes import CLASSES
from fpnpipe.metrics.classification import check_predictions, predicted_labels

PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in CLASSES)
COLUMNS: tuple[str, ...] = ("image_id", "patient_id", "split", "true", *PROBABILITY_COLUMNS, "predicted")


@dataclass(frozen=True)
class Predictions:
    """N rows: image_id, patient_id, split (N,) str; labels (N,) int; probs (N, C) float64."""

    image_id: np.ndarray
    patient_id: np.ndarray
    split: np.ndarray
    labels: np.ndarray
    probs: np.ndarray


def predictions_csv(p: Predictions) -> str:
    """The CSV text: header COLUMNS, probabilities written with Python's shortest round-trip repr (reading
    them back gives the exact float64), predicted = the arg-max class over all four."""
    labels, probs = check_predictions(p.labels, p.probs)
    predicted = predicted_labels(probs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for k in range(labels.size):
        writer.writerow([str(p.image_id[k]), str(p.patient_id[k]), str(p.split[k]), CLASSES[labels[k]],
                         *(repr(float(v)) for v in probs[k]), CLASSES[predicted[k]]])
    return buffer.getvalue()


def read_predictions(path: str | Path) -> Predictions:
    """Read a predictions.csv back; ValueError naming the file and row for a malformed one."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected columns {', '.join(COLUMNS)}")
        rows = list(reader)
    try:
        labels = np.array([CLASSES.index(r["true"]) for r in rows], dtype=np.int64)
        probs = np.array([[float(r[c]) for c in PROBABILITY_COLUMNS] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: malformed row ({exc})") from None
    return Predictions(
        image_id=np.array([r["image_id"] for r in rows], dtype=object),
        patient_id=np.array([r["patient_id"] for r in rows], dtype=object),
        split=np.array([r["split"] for r in rows], dtype=object),
        labels=labels,
        probs=probs.reshape(len(rows), len(CLASSES)),
    )
