"""GradCAM and GradCAM++ maps (pytorch-grad-cam) of the baseline compare.saliency_model for its predicted
class on every annotated test lesion, at the last conv layer, with their activation precision, chance level
and activation area: reports/compare/saliency/ (maps.h5, metrics.json)."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, log, start
from stages.paths import COMPARE_MODELS, COMPARE_SALIENCY
from stages.training import load_sets, load_trained


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("compare-saliency", params)
    name = p.compare.saliency_model
    b = p.baseline(name)
    test = load_sets(b, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir, write_json
    from fpnpipe.data.saliency_record import write_saliency_record
    from fpnpipe.evaluate.report import nan_to_none
    from fpnpipe.evaluate.saliency import saliency_record, saliency_summary

    runtime, model, _ = load_trained("compare-saliency", COMPARE_MODELS / name / "final.pt", b)
    record = saliency_record(model, test, runtime, b.eval.batch_size)
    summary = saliency_summary(record)
    with atomic_dir(COMPARE_SALIENCY) as tmp:
        write_saliency_record(tmp / "maps.h5", record)
        write_json(tmp / "metrics.json", nan_to_none(summary))
    for method, values in summary.items():
        precision = values["activation_precision"]
        log.info("compare-saliency: %s of %s: activation precision %s (chance %s) on %d maps", method, name,
                 precision["average"], precision["chance"]["average"], precision["n_maps"])
    log.info("compare-saliency: wrote %s/", COMPARE_SALIENCY)
