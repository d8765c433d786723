"""The comparison of FPN-IAIA-BL with the baselines of compare.models on the same test crops (paper Table 1
and Figure 4): reports/compare/table1.json (stable keys, for `dvc metrics diff`) and table1.md, with the
margin AUROCs and their patient-level bootstrap CIs, margin balanced accuracy, the paired bootstrap difference
of the average AUROC against FPN-IAIA-BL, and every method's activation precision with its chance level;
Figure-4 style panels per selected test lesion in reports/compare/figure4/; reports/compare/index.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import (
    COMPARE_COMMAND,
    COMPARE_INDEX,
    COMPARE_MODEL_REPORTS,
    COMPARE_MODELS,
    COMPARE_SALIENCY,
    FIGURE4,
    FINAL_MODEL,
    METRICS,
    PREDICTIONS,
    TABLE1_JSON,
    TABLE1_MD,
)
from stages.training import load_sets, load_trained


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"compare-report: cannot read {path}: {exc}")


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("compare-report", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir, write_json, write_text
    from fpnpipe.config import MAIN_MODEL
    from fpnpipe.data.saliency_record import METHOD_LABELS, read_saliency_record
    from fpnpipe.evaluate.comparison import ComparedModel, comparison_table, table_markdown, table_rows
    from fpnpipe.evaluate.predictions import read_predictions
    from fpnpipe.explain.compare_page import render_compare_page
    from fpnpipe.explain.figure4 import figure4_cases, figure4_rows, write_figures
    from fpnpipe.model.build import prototype_network
    from fpnpipe.model.registry import ARCHITECTURES

    labels = {MAIN_MODEL: ARCHITECTURES[p.model.arch].label}
    sources = {MAIN_MODEL: (PREDICTIONS, METRICS, FINAL_MODEL)}
    for name in p.compare.models:
        arch = p.baseline(name).model.arch
        labels[name] = ARCHITECTURES[arch].label if name == arch else f"{ARCHITECTURES[arch].label} ({name})"
        reports = COMPARE_MODEL_REPORTS / name
        sources[name] = (reports / "predictions.csv", reports / "metrics.json", COMPARE_MODELS / name / "final.pt")
    saliency = _json(COMPARE_SALIENCY / "metrics.json")
    compared = []
    for name, (predictions, metrics_path, _) in sources.items():
        try:
            rows = read_predictions(predictions)
        except (OSError, ValueError) as exc:
            fail(f"compare-report: {exc}")
        metrics = _json(metrics_path)
        activation = metrics if metrics.get("activation_precision") else None
        compared.append(ComparedModel(name, labels[name], rows, activation,
                                      saliency if name == p.compare.saliency_model else None, str(predictions)))
    try:
        table = comparison_table(compared, p.eval.bootstrap_samples, p.eval.ci_level, p.seed.train)
    except ValueError as exc:
        fail(f"compare-report: {exc}")
    rows_ = table_rows(table, labels, MAIN_MODEL, METHOD_LABELS)
    write_json(TABLE1_JSON, table)
    write_text(TABLE1_MD, table_markdown(table, rows_, p.seed.train, COMPARE_COMMAND))

    # Figure 4: saliency of the saliency model, then each prototype model's top own-class prototype, in the
    # paper's order (ProtoPNet, IAIA-BL, other baselines), FPN-IAIA-BL last.
    order = ("protopnet", "iaiabl")
    baselines = sorted(p.compare.models, key=lambda n: order.index(a) if (a := p.baseline(n).model.arch) in order
                       else len(order))
    prototype_models = []
    for name in [*baselines, MAIN_MODEL]:
        runtime, model, _ = load_trained("compare-report", sources[name][2], p)
        net = prototype_network(model)
        if net is not None:
            prototype_models.append((labels[name], net))
    record = read_saliency_record(COMPARE_SALIENCY / "maps.h5")
    saliency_labels = {m: f"{METHOD_LABELS[m]} ({labels[p.compare.saliency_model]})" for m in record.maps}
    cases = figure4_cases(test, figure4_rows(test, p.compare.figure_cases), prototype_models, record,
                          saliency_labels, runtime)
    with atomic_dir(FIGURE4) as tmp:
        figures = write_figures(tmp, cases, p.compare.dpi)
    intro = [f"Built by `{COMPARE_COMMAND}`: every model trained on the same crops, split and seeds (data "
             f"{p.seed.data}, training {p.seed.train}) with the same epochs; numbers from the saved test "
             "predictions. One seed: the intervals describe the test sample, not training runs. The same "
             "tables are in table1.md, the numbers in table1.json."]
    page = render_compare_page(
        intro,
        [("Margin classification among the test lesions (Table 1)",
          f"{table['n_test_lesions']} test lesions from {table['n_test_lesion_patients']} patients; AUROC chance "
          "level 0.5, margin balanced accuracy chance level 1/3; patient-level bootstrap 95% intervals, the "
          "difference paired.", rows_.classification),
         ("Activation precision on the annotated test lesions",
          "Share of a map's top-5% pixels inside the fine annotation, beside its chance level (the annotation's "
          "share of the crop) and the half-maximum activation area.", rows_.activation)],
        [(f"{FIGURE4.name}/{f}", text) for f, text in figures],
        "Each panel: a method's map scaled to its own range, in one colour scale; the fine annotation outlined "
        "in cyan; the title gives the map's activation precision on this crop. Cases: annotated test lesions "
        "taken in turn from each margin class by image id (no model chose them).",
    )
    write_text(COMPARE_INDEX, page)
    log.info("compare-report: average margin AUROC %s",
             ", ".join(f"{labels[n]} {table[n]['auroc']['average']}" for n in labels))
    log.info("compare-report: wrote %s, %s, %s/ (%d figures) and %s", TABLE1_JSON, TABLE1_MD, FIGURE4, len(figures),
             COMPARE_INDEX)
