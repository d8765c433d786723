"""Base class for params sections: unknown keys, wrong types and out-of-range values are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A params.yaml section. Validated in strict mode from JSON-compatible data, so a YAML string
    never silently becomes a number, a list becomes a tuple, and an unknown key is refused. No float
    anywhere may be infinite or NaN (YAML `.inf`, `.nan`, or a number too large for a float such as 1e400)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ConfigError(ValueError):
    """Invalid params: the message names the file and every offending key."""
