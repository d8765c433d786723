"""Test-split evaluation of the final model: AUROC one-vs-rest per class and the margin average with
patient-level bootstrap 95% CIs, accuracy, balanced accuracy, activation precision and activation area per
FPN level: reports/metrics.json; ROC curves and the confusion matrix as DVC plots in reports/plots/."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, load_sets, load_trained, log, start
from stages.paths import FINAL_MODEL, METRICS, PLOTS


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("evaluate", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir, write_json
    from fpnpipe.classes import CLASSES
    from fpnpipe.evaluate.activations import activation_pairs, activation_summary
    from fpnpipe.evaluate.bootstrap import bootstrap_auroc_ci
    from fpnpipe.evaluate.plots import confusion_rows, roc_curve_tables
    from fpnpipe.evaluate.report import classification_metrics, nan_to_none
    from fpnpipe.train.data import CropDataset, make_loader
    from fpnpipe.train.loop import predict

    runtime, model, _ = load_trained("evaluate", FINAL_MODEL, p)
    dataset = CropDataset(test)
    loader = make_loader(dataset, p.eval.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probs, labels = predict(model, loader, runtime)
    ci = bootstrap_auroc_ci(labels, probs, test.patient_id, p.eval.bootstrap_samples, p.eval.ci_level, p.seed)
    metrics = classification_metrics(labels, probs, ci)
    if getattr(model, "has_prototypes", False):
        metrics.update(activation_summary(activation_pairs(model, dataset, runtime, p.eval.batch_size)))
    write_json(METRICS, nan_to_none(metrics))

    with atomic_dir(PLOTS) as tmp:
        for name, rows in roc_curve_tables(labels, probs).items():
            write_json(tmp / f"roc_{name}.json", nan_to_none(rows))
        write_json(tmp / "confusion.json", confusion_rows(labels, probs))
    auroc = metrics["auroc"]
    log.info("evaluate: n_test %d, AUROC average %.3f (%s), accuracy %.3f, balanced accuracy %.3f",
             metrics["n_test"], auroc["average"], ", ".join(f"{c} {auroc[c]:.3f}" for c in CLASSES),
             metrics["accuracy"], metrics["balanced_accuracy"])
    log.info("evaluate: wrote %s and %s/", METRICS, PLOTS)
