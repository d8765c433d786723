"""Checkpoints: round trip, atomic and safe loading, clear errors."""

from __future__ import annotations

import pytest
import torch

from fpnpipe.config import ModelParams, PrototypeParams, parse_params
from fpnpipe.model.build import build_model
from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint, model_config, save_checkpoint


class _NotATensor:
    pass


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    params = parse_params({"model": {"fpn_channels": 16}, "prototypes": {"top_k": [3, 1, 1, 1]}})
    net = build_model(params.model, params.prototypes, seed=0)
    with torch.no_grad():
        net.set_prototype(3, torch.arange(16.0))
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    extra = {"epoch": 3, "metrics": {"auroc": 0.5}, "history": [1.0, 2.0], "best": torch.tensor([1, 2])}
    save_checkpoint(path, net, model_config(params.model, params.prototypes), extra)
    return net, path, extra


def test_round_trip(saved):
    net, path, extra = saved
    loaded, got_extra = load_checkpoint(path)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, net(x).logits)
    assert loaded.prototype_layer.top_k == {2: 3, 3: 1, 4: 1, 5: 1}
    assert got_extra["epoch"] == 3 and got_extra["metrics"] == {"auroc": 0.5}
    assert got_extra["config"]["prototypes"]["top_k"] == [3, 1, 1, 1]  # the stored config, for the next save
    assert torch.equal(got_extra["best"], extra["best"])
    assert not list(path.parent.glob(".*.tmp"))  # nothing left behind by the atomic write


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an fpnpipe checkpoint"):
        load_checkpoint(other)


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "fpnpipe-checkpoint", "payload": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (
        f"{path}: refused: not an fpnpipe checkpoint (it holds objects other than tensors and plain data); "
        "fpnpipe never loads such files"
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("object", "refused: not an fpnpipe checkpoint (it holds objects other than tensors"),
        ("legacy-torch", "refused: not an fpnpipe checkpoint (it holds objects other than tensors"),
        ("plain-pickle", "not a readable checkpoint (not a PyTorch file of tensors and plain data (Unsupported"),
        ("junk", "not a readable checkpoint (not a PyTorch file of tensors and plain data (Unsupported"),
    ],
)
def test_refusals_never_suggest_the_unsafe_retry(tmp_path, kind, words):
    import pickle

    path = tmp_path / f"{kind}.pt"
    if kind == "object":
        torch.save({"x": _NotATensor()}, path)
    elif kind == "legacy-torch":
        torch.save({"x": _NotATensor()}, path, _use_new_zipfile_serialization=False)
    elif kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    else:
        path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {words}")
    assert "weights_only" not in message and "trust" not in message and "\n" not in message


def test_weights_that_do_not_match_the_config(saved, tmp_path):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["prototype_layer.prototype_vectors"] = torch.zeros(5, 16)
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="do not match the stored model config"):
        load_checkpoint(bad)


def test_save_refuses_a_wrong_config_or_odd_extra(saved, tmp_path):
    net, _, _ = saved
    with pytest.raises(CheckpointError, match="does not describe"):
        save_checkpoint(tmp_path / "a.pt", net, model_config(ModelParams(), PrototypeParams()))
    with pytest.raises(CheckpointError, match="invalid model config"):
        save_checkpoint(tmp_path / "b.pt", net, {"model": {"arch": "resnet"}, "prototypes": {}})
    params = parse_params({"model": {"fpn_channels": 16}, "prototypes": {"top_k": [3, 1, 1, 1]}})
    with pytest.raises(TypeError, match="extra.obj"):
        save_checkpoint(tmp_path / "c.pt", net, model_config(params.model, params.prototypes), {"obj": _NotATensor()})
    assert not (tmp_path / "c.pt").exists()


def test_same_model_gives_the_same_bytes(saved, tmp_path):
    # DVC skips downstream stages only if an unchanged model gives an unchanged file
    net, path, extra = saved
    params = parse_params({"model": {"fpn_channels": 16}, "prototypes": {"top_k": [3, 1, 1, 1]}})
    again = tmp_path / "again.pt"
    save_checkpoint(again, net, model_config(params.model, params.prototypes), extra)
    assert again.read_bytes() == path.read_bytes()


def test_a_checkpoint_from_before_centring_loads_as_raw_maps(tmp_path):
    # Written before prototypes.center_latent existed: its model compared prototypes with the raw maps and
    # had biased smoothing convolutions, and must load as exactly that, not as today's default.
    params = parse_params({"model": {"fpn_channels": 16}, "prototypes": {"top_k": [3, 1, 1, 1],
                                                                           "center_latent": False}})
    net = build_model(params.model, params.prototypes, seed=0)
    config = model_config(params.model, params.prototypes)
    del config["prototypes"]["center_latent"]
    path = tmp_path / "old.pt"
    save_checkpoint(path, net, config)
    loaded, _ = load_checkpoint(path)
    assert loaded.prototype_layer.center is False and loaded.neck.smooth[0].bias is not None
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, net(x).logits)
