"""The whole explanation report of a model on its test crops, written into one folder: the case figures
(paper Figure 3), the prototype gallery per FPN level (Figure 5), cases.json and index.html."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpnpipe.atomic import write_json, write_text
from fpnpipe.config import ExplainParams
from fpnpipe.data.dataset import CropDataset, make_loader
from fpnpipe.data.projection_record import ProjectionRecord
from fpnpipe.data.schema import CropSet
from fpnpipe.explain.cases import CaseExplanation, case_record, choose_cases, explain_images
from fpnpipe.explain.drawing import activation_scale
from fpnpipe.explain.figures import case_figure, save_figure
from fpnpipe.explain.gallery import gallery_figure, gallery_levels
from fpnpipe.explain.html import render_index, report_document
from fpnpipe.explain.text import safe_name
from fpnpipe.inference import predict
from fpnpipe.log import ProgressCallback
from fpnpipe.metrics.warnings import metric_warnings
from fpnpipe.model.base import ClassifierNet
from fpnpipe.model.build import prototype_network
from fpnpipe.runtime import Runtime

SELECTION = (
    "Cases are chosen deterministically from the test split: one case per true class in turn, each class "
    "alternating between its correct and its wrong predictions (the most confident first), until "
    "explain.n_cases = {n} are chosen (fewer when the test split has fewer). They are listed by true class, "
    "correct before wrong."
)
NO_PROTOTYPES = (
    "The model (arch {arch}) has no prototypes, so there is nothing to explain case by case: the cases below show "
    "its class probabilities only, and there is no prototype gallery."
)


@dataclass(frozen=True)
class ReportSummary:
    cases: int
    correct: int
    gallery_figures: int


def explain_test_cases(
    model: ClassifierNet, test: CropSet, runtime: Runtime, params: ExplainParams
) -> list[CaseExplanation]:
    """Predict every test crop, choose explain.n_cases of them (choose_cases) and explain each."""
    loader = make_loader(CropDataset(test), params.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probabilities, labels = predict(model, loader, runtime)
    chosen = choose_cases(labels, probabilities, params.n_cases)
    cases: list[CaseExplanation] = []
    for start in range(0, len(chosen), params.batch_size):
        rows = chosen[start : start + params.batch_size]
        cases += explain_images(model, test.images[rows], test.image_id[rows].tolist(),
                                [int(v) for v in labels[rows]], params.top_prototypes)
    return cases


def write_report(
    folder: Path, model: ClassifierNet, record: ProjectionRecord | None, test: CropSet,
    metrics: Mapping[str, Any] | None, runtime: Runtime, params: ExplainParams,
    progress: ProgressCallback | None = None,
) -> ReportSummary:
    """Write the report of `model` (with its projection `record`, None without prototypes) on the `test`
    crops into `folder` (which must exist; the caller makes it atomic). `metrics`: reports/metrics.json of
    the evaluate stage, shown at the top of the page with its warnings, or None. progress(done, total):
    the figures drawn."""
    cases = explain_test_cases(model, test, runtime, params)
    net = prototype_network(model)
    entries: list[dict[str, Any]] = []
    gallery: list[dict[str, Any]] = []
    if net is not None and record is not None:
        scale = activation_scale(net.prototype_layer.similarity, record.self_activation)
        digits = max(2, len(str(len(cases))))  # numbered so that the files sort in the page's order
        levels = gallery_levels(record)
        figures = len(cases) + len(levels)
        for k, case in enumerate(cases, start=1):
            name = f"cases/{k:0{digits}d}_{safe_name(case.image_id)}.png"
            save_figure(case_figure(case, record, scale, params.dpi), folder / name)
            entries.append(case_record(case, name))
            if progress is not None:
                progress(k, figures)
        for k, level in enumerate(levels, start=len(cases) + 1):
            name = f"gallery_level_{level}.png"
            save_figure(gallery_figure(record, level, scale, params.dpi), folder / name)
            gallery.append({"level": level, "figure": name})
            if progress is not None:
                progress(k, figures)
        note = None
    else:
        entries = [case_record(case, None) for case in cases]
        note = NO_PROTOTYPES.format(arch=model.arch)
    n_prototypes = int(net.num_prototypes) if net is not None and record is not None else 0
    document = report_document(model.arch, n_prototypes, len(test), SELECTION.format(n=params.n_cases), note,
                               entries, gallery, metrics, metric_warnings(metrics) if metrics else ())
    write_json(folder / "cases.json", document)
    write_text(folder / "index.html", render_index(document))
    correct = int(np.sum([bool(e["correct"]) for e in entries]))
    return ReportSummary(len(entries), correct, len(gallery))
