"""Params validation: a typo, a wrong type or an out-of-range value names the key, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fpnpipe.config import ConfigError, Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def _empty(v: object) -> bool:
    return isinstance(v, dict) and all(_empty(x) for x in v.values())


def _all_keys(d: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a nested mapping; an empty mapping (a baseline that overrides nothing of a section)
    holds no value, so it is no key."""
    keys = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        if _empty(v):
            continue
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


@pytest.mark.parametrize("text", ["", "# only a comment\n", "null\n", "~\n", "{}\n"])
def test_empty_params_file_is_an_error(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="params file is empty"):
        load_params(path)


@pytest.mark.parametrize(
    "text, key",
    [
        ("warmup:\n  lr:\n    neck: .inf\n", "warmup.lr.neck"),
        ("finetune:\n  lr:\n    backbone: .nan\n", "finetune.lr.backbone"),
        ("finetune:\n  last_layer_lr: 1e400\n", "finetune.last_layer_lr"),  # too large for a float: inf
        ("loss:\n  lambda_clust: .inf\n", "loss.lambda_clust"),
        ("negatives:\n  min_distance_px: .inf\n", "negatives.min_distance_px"),
        ("synth:\n  noise: .nan\n", "synth.noise"),
    ],
)
def test_no_float_may_be_infinite_or_nan(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert f"{path}: {key}: Input should be a finite number" in str(err.value)


@pytest.mark.parametrize("key", ["neck", "prototypes", "last_layer"])
def test_learning_rates_must_be_positive(key):
    with pytest.raises(ConfigError, match=rf"p.yaml: warmup.lr.{key}: Input should be greater than 0"):
        parse_params({"warmup": {"lr": {key: 0.0}}}, source="p.yaml")


def test_level_map_sizes_are_those_of_the_backbone():
    # The validation below computes each level's map side as crop.size / FPN_STRIDES[level]: check it
    # against the real VGG-16 taps at two crop sizes.
    import torch

    from fpnpipe.classes import FPN_LEVELS, FPN_STRIDES
    from fpnpipe.model.backbone import VGGBackbone

    backbone = VGGBackbone(0.125)
    for size in (32, 96):
        with torch.no_grad():
            maps = backbone(torch.zeros(1, 1, size, size))
        sides = [tuple(m.shape[-2:]) for m in (maps.values() if isinstance(maps, dict) else maps)]
        assert sides == [(size // FPN_STRIDES[lv],) * 2 for lv in FPN_LEVELS]


@pytest.mark.parametrize(
    "data, key, words",
    [
        # 32 px crops: level 4 is 2 x 2 cells, so top-k 5 cannot be pooled there.
        ({"crop": {"size": 32}, "prototypes": {"top_k": [4, 2, 5, 1], "border_fraction": 0.0}},
         "prototypes.top_k[2]", "at most 4"),
        # 96 px, border 0.2: level 2 is 24 x 24 with 5 border cells a side, 14 x 14 = 196 inside.
        ({"crop": {"size": 96}, "prototypes": {"top_k": [197, 2, 1, 1], "border_fraction": 0.2}},
         "prototypes.top_k[0]", "at most 196"),
        # 32 px, border 0.45: no interior cell is left at any level.
        ({"crop": {"size": 32}, "prototypes": {"border_fraction": 0.45}}, "prototypes.border_fraction",
         "leaves no interior cell"),
        # The iaiabl baseline pools the conv-5 map (crop / 16) with the level-5 k.
        ({"model": {"arch": "iaiabl"}, "crop": {"size": 48}, "prototypes": {"top_k": [1, 1, 1, 10],
                                                                             "border_fraction": 0.0}},
         "prototypes.top_k[3]", "at most 9"),
    ],
)
def test_prototype_params_must_fit_the_maps_of_crop_size(data, key, words):
    with pytest.raises(ConfigError) as err:
        parse_params(data, source="p.yaml")
    assert f"p.yaml: {key}: " in str(err.value) and words in str(err.value)


def test_map_checks_skip_what_the_architecture_does_not_pool():
    # Largest k that fits: 196 at level 2 (96 px, border 0.2); a level without prototypes is not pooled.
    parse_params({"prototypes": {"top_k": [196, 16, 16, 16], "border_fraction": 0.2}})
    no_level_5 = {c: [2, 2, 2, 0] for c in ("circumscribed", "indistinct", "spiculated", "negative")}
    parse_params({"crop": {"size": 32}, "prototypes": {"per_class": no_level_5, "top_k": [4, 2, 1, 99]}})
    parse_params({"model": {"arch": "vgg16"}, "crop": {"size": 32}, "prototypes": {"top_k": [99, 99, 99, 99]}})


def test_map_checks_name_the_key_from_a_file_before_any_stage_work(tmp_path, in_tmp, run_stage):
    from tests.conftest import write_params

    write_params(tmp_path / "p.yaml", {"crop": {"size": 32}, "prototypes": {"top_k": [4, 2, 1, 7]}})
    result = run_stage("warmup", "--params", "p.yaml")
    assert result.exit_code == 2 and "prototypes.top_k[3]" in result.output
    assert not (tmp_path / "models").exists() and not (tmp_path / "dvclive").exists()


def test_seed_is_two_seeds_and_an_old_single_seed_says_how_to_write_it(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: {data: 3, train: 5}\n")
    seeds = load_params(path).seed
    assert (seeds.data, seeds.train) == (3, 5)
    path.write_text("seed: 4\n")
    with pytest.raises(ConfigError, match=r"seed: .*data: 4, train: 4"):
        load_params(path)
