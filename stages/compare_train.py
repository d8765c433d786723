"""One baseline of the comparison (compare.models.<NAME>), trained and evaluated on the main pipeline's crops,
split and seed: warm-up, projection (if it has prototypes) and fine-tuning as the warmup, project and
finetune stages run them, then the evaluate stage's test metrics: models/compare/NAME/ (final.pt,
final_prototypes.h5), reports/compare/models/NAME/ (metrics.json, predictions.csv), dvclive/compare/NAME/."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import PARAMS_OPTION, fail, log, start
from stages.paths import COMPARE_LIVE, COMPARE_MODEL_REPORTS, COMPARE_MODELS
from stages.training import live_epochs, load_sets

NAME_ARGUMENT = typer.Argument(..., help="The baseline: a name in compare.models of the params file.")


def main(name: str = NAME_ARGUMENT, params: Path = PARAMS_OPTION) -> None:
    stage = f"compare-train {name}"
    p = start(stage, params)
    if name not in p.compare.models:
        fail(f"{stage}: {name!r} is not in compare.models ({', '.join(p.compare.models)})", code=2)
    b = p.baseline(name)
    sets = load_sets(b, ("train", "val", "test"))

    from fpnpipe.atomic import atomic_dir, write_json, write_text
    from fpnpipe.config import ConfigError
    from fpnpipe.data.dataset import CropDataset
    from fpnpipe.data.projection_record import write_projection_record
    from fpnpipe.evaluate.run import evaluate_model
    from fpnpipe.evaluate.summary import headline
    from fpnpipe.model.build import build_model
    from fpnpipe.model.checkpoint import model_config, save_checkpoint
    from fpnpipe.runtime import setup_runtime
    from fpnpipe.train.full import train_model
    from fpnpipe.train.projection import describe_projection

    try:
        runtime = setup_runtime(b.train, b.seed.train)
        model = build_model(b.model, b.prototypes, seed=b.seed.train)
    except (ConfigError, ValueError) as exc:
        fail(f"{stage}: {exc}")
    model = runtime.prepare(model)
    log.info("%s: model.arch %s, %d training, %d validation and %d test crops", stage, b.model.arch,
             len(sets["train"]), len(sets["val"]), len(sets["test"]))
    with live_epochs(COMPARE_LIVE / name) as log_epoch:
        result = train_model(model, b, sets["train"], sets["val"], runtime,
                             lambda phase, metrics: log_epoch({f"{phase}/{k}": v for k, v in metrics.items()}))
    record = describe_projection(model, CropDataset(sets["train"]), result.nearest, runtime, b.project.batch_size)
    evaluation = evaluate_model(model, sets["test"], runtime, b.eval, b.seed.train)
    info = {"stage": stage, "selected_epoch": result.epoch, "val": result.val}
    with atomic_dir(COMPARE_MODELS / name) as tmp:
        save_checkpoint(tmp / "final.pt", model, model_config(b.model, b.prototypes), info)
        write_projection_record(tmp / "final_prototypes.h5", record)
    with atomic_dir(COMPARE_MODEL_REPORTS / name) as tmp:
        write_json(tmp / "metrics.json", evaluation.metrics)
        write_text(tmp / "predictions.csv", evaluation.predictions_csv)
    log.info("%s: %s", stage, headline(evaluation.metrics))
    log.info("%s: wrote %s/ and %s/", stage, COMPARE_MODELS / name, COMPARE_MODEL_REPORTS / name)
