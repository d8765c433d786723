"""Case-based explanations of the final model on the test split (paper Figure 3): for explain.n_cases test
crops covering every true class, correct and wrong predictions, one figure whose rows are the prototypes
contributing most to the predicted class; the prototype gallery per FPN level (Figure 5); and
reports/explanations/index.html, a static page that lists them with the test results and warnings at the
top, filterable by class and by correct / wrong."""

from __future__ import annotations

import json
from pathlib import Path

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import EXPLANATIONS, FINAL_MODEL, FINAL_RECORD, METRICS
from stages.training import load_sets


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("explain", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir
    from fpnpipe.explain.consistency import ExplainInputError, load_model_and_record
    from fpnpipe.explain.report import write_report
    from fpnpipe.runtime import setup_runtime

    runtime = setup_runtime(p.train, p.seed)
    try:
        model, record = load_model_and_record(FINAL_MODEL, FINAL_RECORD, p.crop.size)
    except ExplainInputError as exc:
        fail(f"explain: {exc}")
    model = runtime.prepare(model)
    metrics = _read_metrics()
    from fpnpipe.log import progress_callback

    with atomic_dir(EXPLANATIONS) as tmp, progress_callback("figures") as progress:
        summary = write_report(tmp, model, record, test, metrics, runtime, p.explain, progress)
    log.info("explain: %d cases (%d correct, %d wrong), %d gallery figures: %s/index.html", summary.cases,
             summary.correct, summary.cases - summary.correct, summary.gallery_figures, EXPLANATIONS)


def _read_metrics() -> dict | None:
    """reports/metrics.json of the evaluate stage, or None (with a log line) when it is absent."""
    try:
        return json.loads(METRICS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("explain: %s not found: the page will show no test metrics (run evaluate first)", METRICS)
        return None
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"explain: cannot read {METRICS}: {exc}")
