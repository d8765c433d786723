"""Test-split evaluation of the final model: the margin AUROC among lesion crops per class and averaged
(the paper's Table 1) with patient-level bootstrap 95% CIs, the detection AUROC (lesion vs negative), the
one-vs-rest AUROC over all crops, accuracies, activation precision (with its chance level) and activation
area per FPN level: reports/metrics.json; one row per test crop with its probabilities:
reports/predictions.csv; the activation maps those metrics were measured on: reports/activation_maps.npz;
ROC curves and the confusion matrix as DVC plots in reports/plots/."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, log, start
from stages.paths import ACTIVATION_MAPS, FINAL_MODEL, METRICS, PLOTS, PREDICTIONS
from stages.training import load_sets, load_trained


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("evaluate", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.arrays import write_npz
    from fpnpipe.atomic import atomic_dir, write_json, write_text
    from fpnpipe.evaluate.run import evaluate_model
    from fpnpipe.evaluate.summary import headline
    from fpnpipe.log import progress_callback
    from fpnpipe.metrics.warnings import metric_warnings

    runtime, model, _ = load_trained("evaluate", FINAL_MODEL, p)
    with progress_callback("bootstrap") as progress:
        result = evaluate_model(model, test, runtime, p.eval, p.seed.train, progress)
    write_json(METRICS, result.metrics)
    write_text(PREDICTIONS, result.predictions_csv)
    write_npz(ACTIVATION_MAPS, result.activation_maps.arrays())
    with atomic_dir(PLOTS) as tmp:
        for name, rows in result.plots.items():
            write_json(tmp / name, rows)
    log.info("evaluate: %s", headline(result.metrics))
    for note in (result.metrics.get("notes") or {}).values():
        log.warning("evaluate: %s", note)
    for warning in metric_warnings(result.metrics):
        log.warning("evaluate: WARNING: %s", warning)
    log.info("evaluate: wrote %s, %s, %s and %s/", METRICS, PREDICTIONS, ACTIVATION_MAPS, PLOTS)
