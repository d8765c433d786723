"""Params of the reporting stages: eval, explain."""

from __future__ import annotations

from pydantic import Field

from fpnpipe.config.base import Section


class EvalParams(Section):
    """Test-split evaluation."""

    batch_size: int = Field(64, ge=1, le=4096)
    bootstrap_samples: int = Field(1000, ge=0, le=100_000)
    ci_level: float = Field(0.95, gt=0, lt=1)


class ExplainParams(Section):
    """Case-based explanations (paper Figure 3), the prototype gallery (Figure 5) and explain-image.

    n_cases: test cases to explain, chosen to cover every true class, correct and wrong predictions;
    top_prototypes: rows per case figure (the prototypes contributing most to the predicted class);
    dpi: resolution of the PNG figures; batch_size: test crops per forward pass when predicting."""

    n_cases: int = Field(8, ge=0, le=10_000)
    top_prototypes: int = Field(3, ge=1, le=100)
    dpi: int = Field(100, ge=50, le=600)
    batch_size: int = Field(64, ge=1, le=4096)
