"""Which test cases to explain, and what each prototype contributes to a prediction.

The last layer has no bias, so the logit of class k is the sum over all m prototypes of
similarity_j x w_kj (similarity_j = the pooled similarity of the image to prototype j, w = the last layer's
weight (C, m), "class connection"). The contribution of prototype j to class k is that product; a case
shows the prototypes with the largest contributions to the predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fpnpipe.classes import CLASSES
from fpnpipe.metrics.activation import high_activation_box_batch, upsample_activation
from fpnpipe.model.build import Model, prototype_network


@dataclass(frozen=True)
class PrototypeRow:
    """One prototype's part in a prediction (one row of a case figure).

    activation: (S, S) the prototype's patch-similarity map on the case, upsampled bilinearly
    (align_corners=False) to the crop; box: its 95th-percentile high-activation box [x0, y0, x1, y1);
    native: (h, w) float32 the same map at its FPN level's grid resolution, as the model computed it.
    """

    prototype: int
    prototype_class: int
    level: int
    similarity: float
    connection: float
    contribution: float
    activation: np.ndarray
    box: tuple[int, int, int, int]
    native: np.ndarray


@dataclass(frozen=True)
class CaseExplanation:
    """A model's prediction on one crop and the prototypes behind it.

    image: (S, S) crop in [0, 1]; true_label: class index, None when unknown (a new image);
    probabilities, logits: (C,); contributions: (m,) similarity x class connection of every prototype to
    the predicted class ((0,) for a model without prototypes); rows: the top prototypes by contribution,
    largest first.
    """

    image_id: str
    image: np.ndarray
    true_label: int | None
    probabilities: np.ndarray
    logits: np.ndarray
    contributions: np.ndarray
    rows: tuple[PrototypeRow, ...]

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def correct(self) -> bool | None:
        return None if self.true_label is None else self.true_label == self.predicted


def choose_cases(labels: np.ndarray, probabilities: np.ndarray, n_cases: int) -> np.ndarray:
    """Indices of up to `n_cases` cases that cover every class as true label, correct and wrong.

    labels: (N,) true class indices; probabilities: (N, C). Each true class keeps two queues, its correct and
    its wrong predictions, each ordered by the probability of the predicted class, most confident first
    (ties: lower index first). A class draws from its queues alternately, starting with the correct queue for
    even class indices and the wrong one for odd (so that even a small `n_cases` shows both outcomes), and
    falls back to the other queue when one runs out. Rounds go over the classes in order, one case per class
    per round, until `n_cases` are chosen or none is left: every class with test cases is covered first.

    Returned grouped for reading: by true class, correct before wrong, most confident first.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(f"probabilities must be (N, C) with N = {labels.shape[0]}, got {probabilities.shape}")
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = predicted == labels
    queues: list[list[int]] = []
    for c in range(probabilities.shape[1]):
        by_outcome = {}
        for outcome in (True, False):
            members = np.nonzero((labels == c) & (correct == outcome))[0]
            by_outcome[outcome] = members[np.lexsort((members, -confidence[members]))].tolist()
        first = c % 2 == 0
        queues.append(_alternate(by_outcome[first], by_outcome[not first]))
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n_cases and any(depth < len(q) for q in queues):
        chosen += [q[depth] for q in queues if depth < len(q)][: n_cases - len(chosen)]
        depth += 1
    rank = {i: r for r, i in enumerate(np.lexsort((np.arange(len(labels)), -confidence)).tolist())}
    return np.array(sorted(chosen, key=lambda i: (labels[i], not correct[i], rank[i])), dtype=np.int64)


def _alternate(first: list[int], second: list[int]) -> list[int]:
    """first[0], second[0], first[1], second[1], ...; the rest of the longer list at the end."""
    out: list[int] = []
    for k in range(max(len(first), len(second))):
        out += [q[k] for q in (first, second) if k < len(q)]
    return out


def _model_device(model: Model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def explain_images(
    model: Model,
    images: np.ndarray,
    image_ids: Sequence[str],
    true_labels: Sequence[int | None],
    top: int,
) -> list[CaseExplanation]:
    """Run `model` on crops (B, S, S) in [0, 1] and explain each prediction by its `top` prototypes.

    A model without prototypes (the vgg16 black box) gives cases without rows or contributions.
    """
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (B, S, S), got {images.shape}")
    if not len(image_ids) == len(true_labels) == images.shape[0]:
        raise ValueError("images, image_ids and true_labels must have one entry per case")
    model.eval()
    x = torch.from_numpy(images)[:, None].to(_model_device(model))
    out = model(x)
    logits = out.logits.float().cpu()
    probabilities = logits.softmax(dim=1).double().numpy()
    logits_np = logits.double().numpy()
    net = prototype_network(model)
    if net is None or out.similarities is None:
        return [
            CaseExplanation(str(i), img, t, p, lg, np.zeros(0), ())
            for i, img, t, p, lg in zip(image_ids, images, true_labels, probabilities, logits_np, strict=True)
        ]
    similarities = out.similarities.float().cpu().double().numpy()  # (B, m)
    weights = net.last_layer.weight.detach().float().cpu().double().numpy()  # (C, m)
    maps = {level: a.float().cpu().numpy() for level, a in zip(net.levels, out.activations, strict=True)}
    starts = {level: net.level_slice(level).start for level in net.levels}
    proto_class = net.prototype_class.cpu().numpy()
    proto_level = net.prototype_level.cpu().numpy()
    size = images.shape[-1]
    cases = []
    for b in range(images.shape[0]):
        k = int(np.argmax(probabilities[b]))
        contributions = similarities[b] * weights[k]
        order = np.argsort(-contributions, kind="stable")[: min(top, contributions.size)]
        # Levels differ in grid size: upsample each map on its own, then stack at crop size.
        native = [maps[int(proto_level[j])][b, j - starts[int(proto_level[j])]] for j in order]
        upsampled = np.stack([upsample_activation(m, size) for m in native]).astype(np.float32)
        boxes = high_activation_box_batch(upsampled)
        rows = tuple(
            PrototypeRow(
                prototype=int(j), prototype_class=int(proto_class[j]), level=int(proto_level[j]),
                similarity=float(similarities[b, j]), connection=float(weights[k, j]),
                contribution=float(contributions[j]), activation=upsampled[r],
                box=tuple(int(v) for v in boxes[r]),  # type: ignore[arg-type]
                native=native[r].astype(np.float32),
            )
            for r, j in enumerate(order)
        )
        cases.append(
            CaseExplanation(
                str(image_ids[b]), images[b], true_labels[b], probabilities[b], logits_np[b], contributions, rows
            )
        )
    return cases


def case_record(case: CaseExplanation, figure: str | None) -> dict[str, Any]:
    """The JSON-able summary of a case for cases.json: ids, classes, probabilities, the predicted class's
    logit and its sum of contributions, the rows shown, and the figure's path relative to the page."""
    predicted = case.predicted
    return {
        "image_id": case.image_id,
        "true": None if case.true_label is None else CLASSES[case.true_label],
        "predicted": CLASSES[predicted],
        "correct": case.correct,
        "probabilities": {name: round(float(p), 6) for name, p in zip(CLASSES, case.probabilities, strict=True)},
        "logit": round(float(case.logits[predicted]), 6),
        "sum_of_contributions": round(float(case.contributions.sum()), 6) if case.contributions.size else None,
        "rows": [
            {
                "prototype": row.prototype,
                "prototype_class": CLASSES[row.prototype_class],
                "level": row.level,
                "similarity": round(row.similarity, 6),
                "class_connection": round(row.connection, 6),
                "contribution": round(row.contribution, 6),
                "high_activation_box": list(row.box),
            }
            for row in case.rows
        ],
        "figure": figure,
    }
