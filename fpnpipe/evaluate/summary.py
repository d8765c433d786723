"""The one-line summary of a reports/metrics.json dict, for logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fpnpipe.classes import MARGIN_CLASSES


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def headline(metrics: Mapping[str, Any]) -> str:
    """e.g. '208 test crops (86 lesions): margin AUROC among lesions 0.903 (95% CI 0.850-0.951; ...), ...'."""
    auroc, ci = metrics["auroc"], metrics["auroc_ci95"]["average"]
    per_class = ", ".join(f"{c} {_num(auroc[c])}" for c in MARGIN_CLASSES)
    return (f"{metrics['n_test']} test crops ({metrics['n_test_lesions']} lesions): margin AUROC among lesions "
            f"{_num(auroc['average'])} (95% CI {_num(ci['lo'])}-{_num(ci['hi'])}; {per_class}), detection AUROC "
            f"{_num(metrics['detection']['auroc'])}, accuracy {_num(metrics['accuracy'])}, balanced accuracy "
            f"{_num(metrics['balanced_accuracy'])}, margin balanced accuracy "
            f"{_num(metrics['margin_balanced_accuracy'])}")
