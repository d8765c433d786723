"""One call that evaluates a trained model on the test crops: everything the evaluate stage writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fpnpipe.config import EvalParams
from fpnpipe.data.dataset import CropDataset, make_loader
from fpnpipe.data.schema import CropSet
from fpnpipe.evaluate.activations import (
    ActivationMaps,
    activation_metrics,
    collect_activation_maps,
    no_prototype_maps,
)
from fpnpipe.evaluate.plots import confusion_rows, roc_curve_tables
from fpnpipe.evaluate.predictions import Predictions, predictions_csv
from fpnpipe.evaluate.report import classification_metrics, nan_to_none
from fpnpipe.inference import predict
from fpnpipe.log import ProgressCallback
from fpnpipe.model.base import ClassifierNet
from fpnpipe.model.build import prototype_network
from fpnpipe.runtime import Runtime


@dataclass(frozen=True)
class Evaluation:
    """metrics: the reports/metrics.json dict (JSON-safe); predictions_csv: reports/predictions.csv;
    plots: {file name: rows} for reports/plots/; activation_maps: the maps the activation metrics were
    computed on (reports/activation_maps.npz; no maps for a model without prototypes)."""

    metrics: dict[str, Any]
    predictions_csv: str
    plots: dict[str, Any]
    activation_maps: ActivationMaps


def evaluate_model(model: ClassifierNet, test: CropSet, runtime: Runtime, params: EvalParams, seed: int,
                   progress: ProgressCallback | None = None) -> Evaluation:
    """Predict every test crop, compute the classification metrics with patient-level bootstrap CIs (seeded
    by `seed`; `progress(done, total)` follows its resamples), the activation metrics of a prototype model,
    and the plot rows."""
    dataset = CropDataset(test)
    loader = make_loader(dataset, params.batch_size, shuffle=False, pin_memory=runtime.pin_memory)
    probs, labels = predict(model, loader, runtime)
    metrics = classification_metrics(labels, probs, test.patient_id, params.bootstrap_samples, params.ci_level, seed,
                                     progress)
    net = prototype_network(model)
    if net is not None:
        maps = collect_activation_maps(net, dataset, runtime, params.batch_size)
        metrics.update(activation_metrics(maps))
    else:
        maps = no_prototype_maps(test)
    plots: dict[str, Any] = {f"roc_{name}.json": rows for name, rows in roc_curve_tables(labels, probs).items()}
    plots["confusion.json"] = confusion_rows(labels, probs)
    table = predictions_csv(Predictions(test.image_id, test.patient_id, test.split, labels, probs))
    return Evaluation(nan_to_none(metrics), table, plots, maps)
