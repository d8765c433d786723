"""Case-based explanations of the final model on the test split (paper Figure 3): for explain.n_cases test
crops covering every true class, correct and wrong predictions, one figure whose rows are the prototypes
contributing most to the predicted class; the prototype gallery per FPN level (Figure 5); and
reports/explanations/index.html, a static page that lists them, filterable by class and by correct / wrong."""

from __future__ import annotations

from pathlib import Path

from stages.common import PARAMS_OPTION, fail, load_sets, log, start
from stages.paths import EXPLANATIONS, FINAL_MODEL, FINAL_RECORD, METRICS

_SELECTION = (
    "Cases are chosen deterministically from the test split: one case per true class in turn, each class "
    "alternating between its correct and its wrong predictions (the most confident first), until "
    "explain.n_cases = {n} are chosen (fewer when the test split has fewer). They are listed by true class, "
    "correct before wrong."
)
_NO_PROTOTYPES = (
    "The model (arch {arch}) has no prototypes, so there is nothing to explain case by case: the cases below show "
    "its class probabilities only, and there is no prototype gallery."
)


def main(params: Path = PARAMS_OPTION) -> None:
    p = start("explain", params)
    test = load_sets(p, ("test",))["test"]

    from fpnpipe.atomic import atomic_dir, write_json, write_text
    from fpnpipe.explain.cases import case_record, choose_cases, explain_images
    from fpnpipe.explain.consistency import ExplainInputError, load_model_and_record
    from fpnpipe.explain.drawing import activation_scale
    from fpnpipe.explain.figures import case_figure, save_figure
    from fpnpipe.explain.gallery import gallery_figure, gallery_levels
    from fpnpipe.explain.html import render_index, report_document
    from fpnpipe.explain.text import safe_name
    from fpnpipe.metrics.warnings import metric_warnings
    from fpnpipe.train.data import CropDataset, make_loader
    from fpnpipe.train.devices import setup_runtime
    from fpnpipe.train.loop import predict

    runtime = setup_runtime(p.train, p.seed)
    try:
        model, record = load_model_and_record(FINAL_MODEL, FINAL_RECORD, p.crop.size)
    except ExplainInputError as exc:
        fail(f"explain: {exc}")
    model = runtime.prepare(model)

    loader = make_loader(CropDataset(test), p.explain.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probabilities, labels = predict(model, loader, runtime)
    chosen = choose_cases(labels, probabilities, p.explain.n_cases)
    cases = []
    for start_at in range(0, len(chosen), p.explain.batch_size):
        rows = chosen[start_at : start_at + p.explain.batch_size]
        cases += explain_images(model, test.images[rows], test.image_id[rows].tolist(),
                                [int(v) for v in labels[rows]], p.explain.top_prototypes)

    n_prototypes = int(model.num_prototypes) if record is not None else 0
    with atomic_dir(EXPLANATIONS) as tmp:
        entries, gallery = [], []
        if record is not None:
            scale = activation_scale(model.prototype_layer.similarity, record.self_activation)
            digits = max(2, len(str(len(cases))))  # numbered so that the files sort in the page's order
            for k, case in enumerate(cases, start=1):
                name = f"cases/{k:0{digits}d}_{safe_name(case.image_id)}.png"
                save_figure(case_figure(case, record, scale, p.explain.dpi), tmp / name)
                entries.append(case_record(case, name))
            for level in gallery_levels(record):
                name = f"gallery_level_{level}.png"
                save_figure(gallery_figure(record, level, scale, p.explain.dpi), tmp / name)
                gallery.append({"level": level, "figure": name})
        else:
            entries = [case_record(case, None) for case in cases]
        note = None if record is not None else _NO_PROTOTYPES.format(arch=model.arch)
        metrics = _read_metrics()
        document = report_document(model.arch, n_prototypes, len(test), _SELECTION.format(n=p.explain.n_cases),
                                   note, entries, gallery, metrics, metric_warnings(metrics) if metrics else ())
        write_json(tmp / "cases.json", document)
        write_text(tmp / "index.html", render_index(document))
    correct = sum(bool(e["correct"]) for e in entries)
    log.info("explain: %d cases (%d correct, %d wrong), %d gallery figures: %s/index.html",
             len(entries), correct, len(entries) - correct, len(gallery), EXPLANATIONS)


def _read_metrics() -> dict | None:
    """reports/metrics.json of the evaluate stage, or None (with a log line) when it is absent."""
    import json

    try:
        return json.loads(METRICS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("explain: %s not found: the page will show no test metrics (run evaluate first)", METRICS)
        return None
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"explain: cannot read {METRICS}: {exc}")
