"""Wording shared by the figures, the HTML page and the terminal: captions, probabilities, file names."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from fpnpipe.classes import CLASSES, NEGATIVE_INDEX

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def subject(true_label: int | None) -> str:
    """What the crop shows, for a caption: 'This spiculated lesion', 'This negative (no lesion) patch',
    or 'This lesion' when the truth is unknown (a new image)."""
    if true_label is None:
        return "This lesion"
    if true_label == NEGATIVE_INDEX:
        return "This negative (no lesion) patch"
    return f"This {CLASSES[true_label]} lesion"


def verdict(true_label: int | None, predicted: int) -> str:
    """'correctly' / 'wrongly' / '' as the adverb of 'classified', by the truth when it is known."""
    if true_label is None:
        return ""
    return "correctly " if true_label == predicted else "wrongly "


def caption(true_label: int | None, predicted: int) -> str:
    """The paper's Figure 3 caption, e.g. 'This circumscribed lesion is correctly classified as
    circumscribed.'; the predicted class of a negative prediction reads 'negative (no lesion)'."""
    name = CLASSES[predicted] + (" (no lesion)" if predicted == NEGATIVE_INDEX else "")
    return f"{subject(true_label)} is {verdict(true_label, predicted)}classified as {name}."


def probability_line(probabilities: Sequence[float] | np.ndarray) -> str:
    """'circumscribed 0.120 · indistinct 0.050 · spiculated 0.800 · negative 0.030' over the C classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(CLASSES),):
        raise ValueError(f"expected {len(CLASSES)} class probabilities, got shape {probabilities.shape}")
    return " · ".join(f"{name} {p:.3f}" for name, p in zip(CLASSES, probabilities, strict=True))


def probability_table(probabilities: Sequence[float] | np.ndarray) -> str:
    """A small plain-text table of the class probabilities (one line per class, the predicted one marked),
    for the terminal."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(CLASSES),):
        raise ValueError(f"expected {len(CLASSES)} class probabilities, got shape {probabilities.shape}")
    predicted = int(np.argmax(probabilities))
    width = max(len(c) for c in CLASSES)
    lines = [f"{'class':<{width}}  probability", f"{'-' * width}  -----------"]
    for k, (name, p) in enumerate(zip(CLASSES, probabilities, strict=True)):
        mark = "  <- predicted" if k == predicted else ""
        lines.append(f"{name:<{width}}  {p:11.4f}{mark}")
    return "\n".join(lines)


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name stem from an image id: runs of characters other than ASCII letters, digits, '_' and '-'
    become one '_' (so no '.', no path separator, no hidden file), trimmed to `limit`; empty gives 'case'."""
    stem = _UNSAFE.sub("_", text).strip("_")[:limit]
    return stem or "case"
