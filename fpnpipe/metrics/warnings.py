"""Plain-language warnings read off a reports/metrics.json dict: a model that predicts one class for
(nearly) everything, a margin AUROC whose interval includes chance, classes too small for a tight interval.

A pure function of the metrics, so the evaluate stage (its log) and the explain stage (the top of the HTML
report) say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fpnpipe.classes import MARGIN_CLASSES

COLLAPSE_SHARE: float = 0.9
"""A single predicted class for at least this share of the rows counts as a collapse."""
SMALL_CLASS: int = 10
"""Fewer test lesions of a margin class than this: its AUROC interval is wide (README, "Reading the CIs")."""


def _collapse(shares: Mapping[str, Any] | None, population: str) -> list[str]:
    if not shares:
        return []
    defined = {k: v for k, v in shares.items() if isinstance(v, (int, float))}
    if not defined:
        return []
    name, share = max(defined.items(), key=lambda kv: kv[1])
    if share < COLLAPSE_SHARE:
        return []
    return [f"the model predicts '{name}' for {share:.0%} of {population}: its arg-max predictions carry "
            "(almost) no information; read the AUROCs, not the accuracies, and check the class balance"]


def metric_warnings(metrics: Mapping[str, Any]) -> list[str]:
    """Warnings for the metrics dict of reports/metrics.json (None values allowed); empty when all is well."""
    out = _collapse(metrics.get("predicted_share"), "the test crops")
    out += _collapse(metrics.get("margin_predicted_share"), "the test lesions (margin classes only)")
    ci = (metrics.get("auroc_ci95") or {}).get("average") or {}
    lo, hi = ci.get("lo"), ci.get("hi")
    average = (metrics.get("auroc") or {}).get("average")
    if average is None:
        out.append("the margin AUROC among test lesions is undefined: some margin class has no test lesion")
    elif lo is not None and hi is not None and lo <= 0.5 <= hi:
        out.append(f"the margin AUROC among test lesions ({average:.3f}, 95% CI {lo:.3f}-{hi:.3f}) is not "
                   "distinguishable from chance (0.5)")
    by_class = metrics.get("n_test_by_class") or {}
    small = [f"{c} ({by_class[c]})" for c in MARGIN_CLASSES if isinstance(by_class.get(c),
                                                                          int) and by_class[c] < SMALL_CLASS]
    if small:
        out.append(f"fewer than {SMALL_CLASS} test lesions of {', '.join(small)}: those AUROCs rest on few cases "
                   "and their intervals are wide (see the README on reading the CIs)")
    return out
