"""Params validation: a typo, a wrong type or an out-of-range value names the key, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fpnpipe.config import ConfigError, Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def _all_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        keys.add(key)
        if isinstance(v, dict):
            keys |= _all_keys(v, key + ".")
    return keys


def test_params_yaml_spells_out_every_key_with_the_code_defaults():
    # DVC tracks only what params.yaml spells out, so every key must be there (and equal the defaults).
    data = YAML(typ="safe").load((ROOT / "params.yaml").read_text())
    assert _all_keys(data) == _all_keys(Params().model_dump(mode="json"))
    assert load_params(ROOT / "params.yaml") == Params()


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"crop": {"sise": 96}}, "crop.sise", "unknown key"),
        ({"loss": {"lambda_fine": -1.0}}, "loss.lambda_fine", "greater than or equal to 0"),
        ({"crop": {"size": 100}}, "crop.size", "multiple of 16"),
        ({"crop": {"size": "96"}}, "crop.size", "valid integer"),
        ({"warmup": {"lr": {"neck": "1e-3x"}}}, "warmup.lr.neck", "valid number"),
        ({"model": {"arch": "resnet"}}, "model.arch", "fpn_iaiabl"),
        ({"split": {"val_fraction": 0.6, "test_fraction": 0.5}}, "split", "below 1"),
        ({"synth": {"lesion_radius_px": [30.0, 10.0]}}, "synth.lesion_radius_px", "low <= high"),
        ({"typo_section": {}}, "typo_section", "unknown key"),
        ({"data": {"label_map": {"obscured": "cancer"}}}, "data.label_map", "targets must be one of"),
    ],
)
def test_bad_values_name_their_key(data, key, words):
    with pytest.raises(ConfigError) as err:
        parse_params(data, source="p.yaml")
    message = str(err.value)
    assert f"p.yaml: {key}" in message and words in message


def test_scientific_notation_is_a_number(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("warmup:\n  lr:\n    neck: 1e-4\n")
    assert load_params(path).warmup.lr.neck == pytest.approx(1e-4)


def test_unreadable_or_non_mapping_params_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad)
