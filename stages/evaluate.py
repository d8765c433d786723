"""Test-split evaluation of the final model: the margin AUROC among lesion crops per class and averaged
(the paper's Table 1) with patient-level bootstrap 95% CIs, the detection AUROC (lesion vs negative), the
one-vs-rest AUROC over all crops, accuracies, activation precision (with its chance level) and activation
area per FPN level: reports/metrics.json; one row per test crop with its probabilities:
reports/predictions.csv; ROC curves and the confusion matrix as DVC plots in reports/plots/."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, load_sets, load_trained, log, start
from stages.paths import FINAL_MODEL, METRICS, PLOTS, PREDICTIONS


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("evaluate", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir, write_json, write_text
    from fpnpipe.evaluate.activations import activation_pairs, activation_summary
    from fpnpipe.evaluate.plots import confusion_rows, roc_curve_tables
    from fpnpipe.evaluate.predictions import Predictions, predictions_csv
    from fpnpipe.evaluate.report import classification_metrics, nan_to_none
    from fpnpipe.metrics.warnings import metric_warnings
    from fpnpipe.train.data import CropDataset, make_loader
    from fpnpipe.train.loop import predict

    runtime, model, _ = load_trained("evaluate", FINAL_MODEL, p)
    dataset = CropDataset(test)
    loader = make_loader(dataset, p.eval.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probs, labels = predict(model, loader, runtime)
    metrics = classification_metrics(labels, probs, test.patient_id, p.eval.bootstrap_samples, p.eval.ci_level,
                                     p.seed)
    if getattr(model, "has_prototypes", False):
        metrics.update(activation_summary(activation_pairs(model, dataset, runtime, p.eval.batch_size)))
    metrics = nan_to_none(metrics)
    write_json(METRICS, metrics)
    write_text(PREDICTIONS, predictions_csv(Predictions(test.image_id, test.patient_id, test.split, labels, probs)))
    with atomic_dir(PLOTS) as tmp:
        for name, rows in roc_curve_tables(labels, probs).items():
            write_json(tmp / f"roc_{name}.json", rows)
        write_json(tmp / "confusion.json", confusion_rows(labels, probs))

    auroc, ci = metrics["auroc"], metrics["auroc_ci95"]["average"]
    log.info("evaluate: %d test crops (%d lesions): margin AUROC among lesions %s (95%% CI %s-%s; %s), "
             "detection AUROC %s, accuracy %.3f, balanced accuracy %.3f, margin balanced accuracy %s",
             metrics["n_test"], metrics["n_test_lesions"], _num(auroc["average"]), _num(ci["lo"]), _num(ci["hi"]),
             ", ".join(f"{c} {_num(auroc[c])}" for c in ("circumscribed", "indistinct", "spiculated")),
             _num(metrics["detection"]["auroc"]), metrics["accuracy"], metrics["balanced_accuracy"],
             _num(metrics["margin_balanced_accuracy"]))
    for warning in metric_warnings(metrics):
        log.warning("evaluate: WARNING: %s", warning)
    log.info("evaluate: wrote %s, %s and %s/", METRICS, PREDICTIONS, PLOTS)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
