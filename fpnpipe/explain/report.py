"""The whole explanation report of a model on its test crops, written into one folder: the case figures
(paper Figure 3) of explain.n_cases chosen crops, a strip, the activation maps (.npz) and the mammogram
location of every test crop, the prototype gallery per FPN level (Figure 5) and one entry per prototype, PNG
renderings of the pipeline's plots (training curves, ROC curves, confusion matrix), cases.json and index.html."""

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
from fpnpipe.data.thumbnails import Thumbnail
from fpnpipe.explain.browse import ImageThumbnails, write_crop_entry
from fpnpipe.explain.cases import CaseExplanation, case_record, choose_cases, explain_images
from fpnpipe.explain.drawing import ActivationScale, activation_scale
from fpnpipe.explain.figures import case_figure, save_figure
from fpnpipe.explain.gallery import gallery_figure, gallery_levels
from fpnpipe.explain.html import render_index, report_document
from fpnpipe.explain.plots import Series, confusion_figure, roc_figure, training_curves_figure
from fpnpipe.explain.prototype_entries import write_prototype_entries
from fpnpipe.explain.text import safe_name
from fpnpipe.inference import predict
from fpnpipe.log import progress
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
class ReportInputs:
    """What the report shows besides the model: test (the test crops: lesion crops then negative patches, as
    evaluate orders them); source_boxes: crop id -> crop box in source pixels of the training crops (where
    each prototype's source crop lies); thumbnails: image id -> Thumbnail (data/processed/thumbnails.h5; empty
    when absent); metrics: reports/metrics.json or None; curves: {stage name: DVCLive series}; plots_dir: the
    folder of evaluate's plot files (reports/plots), or None."""

    test: CropSet
    source_boxes: Mapping[str, np.ndarray]
    thumbnails: Mapping[str, Thumbnail]
    metrics: Mapping[str, Any] | None
    curves: Mapping[str, list[Series]]
    plots_dir: Path | None


COMPARISON_LINKS = ({"href": "../compare/index.html",
                     "title": "beside its baselines (Table 1, Figure 4; built by dvc repro stages/compare/dvc.yaml)"},)
"""The comparison report of stages/compare/dvc.yaml, linked from the top of the page (absent until it is built)."""


@dataclass(frozen=True)
class ReportSummary:
    cases: int
    correct: int
    gallery_figures: int
    crops: int
    plots: int


def write_plots(folder: Path, inputs: ReportInputs, dpi: int) -> list[dict[str, Any]]:
    """plots/*.png of the training curves, ROC curves and confusion matrix; entries {"title", "figure",
    "source"} for the page (a plot whose input is absent is left out)."""
    entries = []
    for stage, series in inputs.curves.items():
        figure = training_curves_figure(f"Training curves of the {stage} stage (DVCLive)", series, dpi)
        if figure is not None:
            name = f"plots/training_{safe_name(stage)}.png"
            save_figure(figure, folder / name)
            entries.append({"title": f"Training curves: {stage}", "figure": name,
                            "source": f"dvclive/{stage}/plots/metrics/"})
    if inputs.plots_dir is not None:
        for title, name, figure in (
            ("ROC curves, test split", "plots/roc.png", roc_figure(inputs.plots_dir, inputs.metrics, dpi)),
            ("Confusion matrix, test split", "plots/confusion.png", confusion_figure(inputs.plots_dir, dpi)),
        ):
            if figure is not None:
                save_figure(figure, folder / name)
                entries.append({"title": title, "figure": name, "source": f"{inputs.plots_dir.as_posix()}/"})
    return entries


def _figures(folder: Path, chosen: list[CaseExplanation], crops: list[dict[str, Any]], rois: list[np.ndarray],
             record: ProjectionRecord, scale: ActivationScale, dpi: int) -> list[dict[str, Any]]:
    """The Figure 3 of each chosen case (with its crop's ROI outline and scale, from `crops` / `rois`)."""
    digits = max(2, len(str(len(chosen))))  # numbered so that the files sort in the page's order
    entries = []
    for k, (case, crop, roi) in enumerate(zip(chosen, crops, rois, strict=True), start=1):
        name = f"cases/{k:0{digits}d}_{safe_name(case.image_id)}.png"
        save_figure(case_figure(case, record, scale, dpi, roi=roi, mm_per_pixel=crop["mm_per_pixel"]), folder / name)
        entries.append(case_record(case, name))
    return entries


def write_report(
    folder: Path, model: ClassifierNet, record: ProjectionRecord | None, inputs: ReportInputs, runtime: Runtime,
    params: ExplainParams,
) -> ReportSummary:
    """Write the report of `model` (with its projection `record`, None without prototypes) into `folder`
    (which must exist; the caller makes it atomic)."""
    test = inputs.test
    loader = make_loader(CropDataset(test), params.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probabilities, labels = predict(model, loader, runtime)
    chosen = [int(i) for i in choose_cases(labels, probabilities, params.n_cases)]
    case_number = {row: k for k, row in enumerate(chosen, start=1)}
    net = prototype_network(model)
    scale = activation_scale(net.prototype_layer.similarity, record.self_activation) \
        if net is not None and record is not None else None
    images = ImageThumbnails(folder, inputs.thumbnails)
    chosen_cases: dict[int, CaseExplanation] = {}
    crops: list[dict[str, Any]] = []
    digits = max(3, len(str(len(test))))
    with progress() as bar:
        task = bar.add_task("explain: test crops", total=len(test))
        for start in range(0, len(test), params.batch_size):
            rows = np.arange(start, min(start + params.batch_size, len(test)))
            cases = explain_images(model, test.images[rows], test.image_id[rows].tolist(),
                                   [int(v) for v in labels[rows]], params.top_prototypes)
            for row, case in zip(rows.tolist(), cases, strict=True):
                if row in case_number:
                    chosen_cases[row] = case
                crops.append(write_crop_entry(folder, case, row + 1, digits, row, test.roi[row],
                                              test.source_box[row], images, scale, None, case_number.get(row)))
                bar.advance(task)
    gallery: list[dict[str, Any]] = []
    prototypes: list[dict[str, Any]] = []
    if scale is not None and record is not None:
        entries = _figures(folder, [chosen_cases[row] for row in chosen], [crops[row] for row in chosen],
                           [test.roi[row] for row in chosen], record, scale, params.dpi)
        for entry, row in zip(entries, chosen, strict=True):
            crops[row]["figure"] = entry["figure"]
        for level in gallery_levels(record):
            name = f"gallery_level_{level}.png"
            save_figure(gallery_figure(record, level, scale, params.dpi), folder / name)
            gallery.append({"level": level, "figure": name})
        prototypes = write_prototype_entries(folder, record, scale, images, inputs.source_boxes)
        note = None
    else:
        entries = [case_record(chosen_cases[row], None) for row in chosen]
        note = NO_PROTOTYPES.format(arch=model.arch)
    for entry, row in zip(entries, chosen, strict=True):
        entry["crop_number"] = row + 1
    plots = write_plots(folder, inputs, params.dpi)
    n_prototypes = int(net.num_prototypes) if net is not None and record is not None else 0
    metrics = inputs.metrics
    document = report_document(model.arch, n_prototypes, len(test), SELECTION.format(n=params.n_cases), note,
                               entries, gallery, metrics, metric_warnings(metrics) if metrics else (),
                               crops=crops, prototypes=prototypes, plots=plots, links=COMPARISON_LINKS)
    write_json(folder / "cases.json", document)
    write_text(folder / "index.html", render_index(document))
    correct = int(np.sum([bool(e["correct"]) for e in entries]))
    return ReportSummary(len(entries), correct, len(gallery), len(crops), len(plots))
