"""Case-based explanations of the final model on the test split (paper Figure 3): for explain.n_cases test
crops covering every true class, correct and wrong predictions, one figure whose rows are the prototypes
contributing most to the predicted class; for every test crop a strip (ROI outline, mm scale bar, top
prototype activations), its activation maps as .npz and its place in the mammogram; the prototype gallery per
FPN level (Figure 5) and an entry per prototype; PNG renderings of the training curves, ROC curves and
confusion matrix; and reports/explanations/index.html, a static page that works offline, with the test
results and warnings at the top, filterable by class and by correct / wrong."""

from __future__ import annotations

import json
from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import (
    EXPLANATIONS,
    FINAL_MODEL,
    FINAL_RECORD,
    FINETUNE_LIVE,
    METRICS,
    PLOTS,
    THUMBNAILS,
    WARMUP_LIVE,
)
from stages.training import load_sets


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("explain", params)
    sets = load_sets(p, ("train", "test"))

    from fpnpipe.atomic import atomic_dir
    from fpnpipe.data.thumbnails import read_thumbnails
    from fpnpipe.explain.consistency import ExplainInputError, load_model_and_record
    from fpnpipe.explain.plots import PlotInputError, read_curves
    from fpnpipe.explain.report import ReportInputs, write_report
    from fpnpipe.runtime import setup_runtime

    runtime = setup_runtime(p.train, p.seed.train)
    try:
        model, record = load_model_and_record(FINAL_MODEL, FINAL_RECORD, p.crop.size)
        curves = {stage: read_curves(live) for stage, live in (("warmup", WARMUP_LIVE), ("finetune", FINETUNE_LIVE))}
        thumbnails = read_thumbnails(THUMBNAILS) if THUMBNAILS.exists() else {}
    except (ExplainInputError, PlotInputError, ValueError) as exc:
        fail(f"explain: {exc}")
    if not thumbnails:
        log.warning("explain: %s not found: the page will not show where the crops lie in their mammograms, nor "
                    "scale bars (rerun preprocess)", THUMBNAILS)
    train = sets["train"]
    inputs = ReportInputs(test=sets["test"], source_boxes=dict(zip(train.image_id.tolist(), train.source_box,
                                                                   strict=True)),
                          thumbnails=thumbnails, metrics=_read_metrics(), curves=curves,
                          plots_dir=PLOTS if PLOTS.is_dir() else None)
    model = runtime.prepare(model)
    try:
        with atomic_dir(EXPLANATIONS) as tmp:
            summary = write_report(tmp, model, record, inputs, runtime, p.explain)
    except PlotInputError as exc:
        fail(f"explain: {exc}")
    log.info("explain: %d cases (%d correct, %d wrong), %d test crops, %d gallery figures, %d plots: %s/index.html",
             summary.cases, summary.correct, summary.cases - summary.correct, summary.crops, summary.gallery_figures,
             summary.plots, EXPLANATIONS)


def _read_metrics() -> dict | None:
    """reports/metrics.json of the evaluate stage, or None (with a log line) when it is absent."""
    try:
        return json.loads(METRICS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("explain: %s not found: the page will show no test metrics (run evaluate first)", METRICS)
        return None
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"explain: cannot read {METRICS}: {exc}")
