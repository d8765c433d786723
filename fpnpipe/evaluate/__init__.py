"""Evaluation: classification metrics with patient-level bootstrap CIs, interpretability metrics, plot data."""

from fpnpipe.evaluate.bootstrap import BootstrapCI, bootstrap_auroc_ci, bootstrap_auroc_replicates
from fpnpipe.evaluate.interpretability import (
    activation_area,
    activation_area_batch,
    activation_precision,
    activation_precision_batch,
    high_activation_box,
    high_activation_box_batch,
    high_activation_mask,
    high_activation_mask_batch,
    summarise_by_level_and_class,
    upsample_activation,
    upsample_activation_batch,
)
from fpnpipe.evaluate.metrics import accuracy, auroc_table, balanced_accuracy, confusion
from fpnpipe.evaluate.plots import confusion_rows, roc_curve_rows, roc_curve_tables
from fpnpipe.evaluate.report import classification_metrics, nan_to_none

__all__ = [
    "BootstrapCI",
    "accuracy",
    "activation_area",
    "activation_area_batch",
    "activation_precision",
    "activation_precision_batch",
    "auroc_table",
    "balanced_accuracy",
    "bootstrap_auroc_ci",
    "bootstrap_auroc_replicates",
    "classification_metrics",
    "confusion",
    "confusion_rows",
    "high_activation_box",
    "high_activation_box_batch",
    "high_activation_mask",
    "high_activation_mask_batch",
    "nan_to_none",
    "roc_curve_rows",
    "roc_curve_tables",
    "summarise_by_level_and_class",
    "upsample_activation",
    "upsample_activation_batch",
]
