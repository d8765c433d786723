"""The FPN-IAIA-BL network and its baselines: shapes, equation (1), wiring, gradients, parameter groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from fpnpipe.config import ConfigError, LossParams, ModelParams, PrototypeParams, parse_params
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.backbone import VGGBackbone
from fpnpipe.model.build import build_model, build_network
from fpnpipe.model.fpn import FeaturePyramid
from fpnpipe.model.head import LastLayer

QUICK = ModelParams()  # width 0.125, d = 64
PROTOS = PrototypeParams()


def _protos(**per_class: tuple[int, int, int, int]) -> PrototypeParams:
    return parse_params({"prototypes": {"per_class": {k: list(v) for k, v in per_class.items()}}}).prototypes


def test_pyramid_shapes_full_width_at_224():
    net = build_network(ModelParams(width=1.0, fpn_channels=32), PROTOS)
    with torch.no_grad():
        taps = net.backbone(torch.rand(1, 1, 224, 224))
        z = net.neck(taps)
    assert [tuple(t.shape[1:]) for t in taps] == [(128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 14, 14)]
    assert [tuple(t.shape[1:]) for t in z] == [(32, 56, 56), (32, 28, 28), (32, 14, 14), (32, 14, 14)]


def test_pyramid_shapes_quickstart():
    net = build_network(QUICK, PROTOS)
    x = torch.rand(2, 1, 96, 96)
    taps = net.backbone(x)
    assert [tuple(t.shape[1:]) for t in taps] == [(16, 24, 24), (32, 12, 12), (64, 6, 6), (64, 6, 6)]
    z = net.forward_features(x)
    assert [tuple(t.shape) for t in z] == [(2, 64, 24, 24), (2, 64, 12, 12), (2, 64, 6, 6), (2, 64, 6, 6)]
    out = net.forward_head(z)
    assert out.logits.shape == (2, 4) and out.similarities.shape == (2, 32)
    assert [tuple(a.shape) for a in out.activations] == [(2, 8, 24, 24), (2, 8, 12, 12), (2, 8, 6, 6), (2, 8, 6, 6)]
    assert torch.allclose(out.probabilities.sum(1), torch.ones(2))


def _up2(z: torch.Tensor) -> torch.Tensor:
    return z.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def test_fpn_follows_equation_1():
    torch.manual_seed(0)
    fpn = FeaturePyramid({2: 3, 3: 4, 4: 5, 5: 5}, 6)
    c2, c3, c4, c5 = torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4), torch.randn(2, 5, 2, 2), torch.randn(2, 5, 2, 2)
    z2, z3, z4, z5 = fpn([c2, c3, c4, c5])

    def conv1(i, c):
        return F.conv2d(c, fpn.lateral[i].weight, fpn.lateral[i].bias)

    def conv3(i, c):
        return F.conv2d(c, fpn.smooth[i].weight, fpn.smooth[i].bias, padding=1)

    e5 = conv1(3, c5)  # top level: a 1x1 only, no 3x3
    e4 = conv3(2, e5 + conv1(2, c4))  # c4 and c5 share a size: Up is the identity
    e3 = conv3(1, _up2(e4) + conv1(1, c3))  # the top-down path carries z(l+1), after its 3x3
    e2 = conv3(0, _up2(e3) + conv1(0, c2))
    for got, expected in ((z2, e2), (z3, e3), (z4, e4), (z5, e5)):
        torch.testing.assert_close(got, expected)
    assert len(fpn.smooth) == 3


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _save_vgg16_features(path, cfg: str = "D") -> torch.nn.Sequential:
    """A stand-in for torchvision's vgg16 ImageNet file: random features plus a classifier entry."""
    torch.manual_seed(1)
    features = make_layers(cfgs[cfg])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(3, 3)
    torch.save(state, path)
    return features


def test_pretrained_weights_grey_input_and_normalisation(tmp_path):
    path = tmp_path / "vgg16.pth"
    reference = _save_vgg16_features(path).eval()
    net = build_model(ModelParams(width=1.0, pretrained=str(path)), PROTOS)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        c5 = net.backbone(x)[-1]
        expected = reference[:30]((x.repeat(1, 3, 1, 1) - IMAGENET_MEAN) / IMAGENET_STD)  # all but the last pool
    torch.testing.assert_close(c5, expected)


class _Opaque:
    """An arbitrary object: torch.load(weights_only=True) must refuse to rebuild it."""


def test_pretrained_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.pretrained: file not found"):
        build_model(ModelParams(width=1.0, pretrained=str(tmp_path / "none.pth")), PROTOS)
    vgg11 = tmp_path / "vgg11.pth"
    _save_vgg16_features(vgg11, cfg="A")
    with pytest.raises(ConfigError, match="model.pretrained: .* does not hold torchvision's VGG-16"):
        build_model(ModelParams(width=1.0, pretrained=str(vgg11)), PROTOS)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="not a readable"):
        build_model(ModelParams(width=1.0, pretrained=str(junk)), PROTOS)
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.zeros(1), "hook": _Opaque()}, evil)
    with pytest.raises(ConfigError) as info:
        build_model(ModelParams(width=1.0, pretrained=str(evil)), PROTOS)
    assert str(info.value) == (
        f"model.pretrained: {evil}: refused: not a plain state dict (it holds objects other than tensors and "
        "plain data); fpnpipe never loads such files"
    )
    with pytest.raises(ConfigError, match="model.pretrained: .*full-width"):
        parse_params({"model": {"width": 0.5, "pretrained": "w.pth"}})


def test_every_class_needs_a_prototype_but_a_level_may_have_none():
    with pytest.raises(ConfigError, match="prototypes.per_class: .*class spiculated has no prototype"):
        parse_params({"prototypes": {"per_class": {"spiculated": [0, 0, 0, 0]}}})
    zero_level_3 = {c: (1, 0, 1, 1) for c in ("circumscribed", "indistinct", "spiculated", "negative")}
    params = parse_params({"prototypes": {"per_class": {k: list(v) for k, v in zero_level_3.items()}}})
    net = build_network(QUICK, params.prototypes)
    x = torch.rand(2, 1, 32, 32)
    out = net(x)
    assert [tuple(a.shape) for a in out.activations] == [(2, 4, 8, 8), (2, 0, 4, 4), (2, 4, 2, 2), (2, 4, 2, 2)]
    assert out.similarities.shape == (2, 12)
    assert net.level_slice(3) == slice(4, 4)
    loss = PrototypeLoss.for_model(LossParams(), net)
    fine = torch.zeros(2, 32, 32)
    fine[:, 8:16, 8:16] = 1
    terms = loss(out, torch.tensor([0, 3]), fine, torch.tensor([True, True]))
    terms.total.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_prototype_order_buffers_and_slices():
    params = _protos(
        circumscribed=(1, 0, 1, 0), indistinct=(0, 0, 1, 2), spiculated=(2, 0, 1, 0), negative=(0, 0, 1, 1)
    )
    net = build_network(QUICK, params)
    assert net.prototype_class.tolist() == [0, 2, 2, 0, 1, 2, 3, 1, 1, 3]
    assert net.prototype_level.tolist() == [2, 2, 2, 4, 4, 4, 4, 5, 5, 5]
    assert [net.level_slice(lv) for lv in (2, 3, 4, 5)] == [slice(0, 3), slice(3, 3), slice(3, 7), slice(7, 10)]
    assert net.level_prototypes(4).shape == (4, 64)


def test_last_layer_initial_connections():
    layer = LastLayer(torch.tensor([0, 1, 1, 3]), 4, incorrect_class_connection=-0.5)
    expected = torch.tensor(
        [[1.0, -0.5, -0.5, -0.5], [-0.5, 1.0, 1.0, -0.5], [-0.5, -0.5, -0.5, -0.5], [-0.5, -0.5, -0.5, 1.0]]
    )
    assert torch.equal(layer.weight, expected) and layer.bias is None


def test_iaiabl_baseline_is_single_scale_on_conv5():
    net = build_network(ModelParams(arch="iaiabl", addon_channels=16), PROTOS)
    assert net.levels == (5,) and net.prototype_class.tolist() == sum(([c] * 8 for c in range(4)), [])
    out = net(torch.rand(2, 1, 64, 64))
    assert [tuple(a.shape) for a in out.activations] == [(2, 32, 4, 4)]
    z = net.forward_features(torch.rand(1, 1, 64, 64))[0]
    assert z.shape == (1, 16, 4, 4) and z.min() >= 0 and z.max() <= 1  # the add-on ends in a sigmoid
    black_box = build_network(ModelParams(arch="vgg16"), PROTOS)
    out = black_box(torch.rand(2, 1, 64, 64))
    assert out.logits.shape == (2, 4) and out.similarities is None and out.activations == ()


@pytest.mark.parametrize(
    "arch, groups",
    [
        ("fpn_iaiabl", {"backbone", "neck", "prototypes", "last_layer"}),
        ("iaiabl", {"backbone", "neck", "prototypes", "last_layer"}),
        ("vgg16", {"backbone", "last_layer"}),
    ],
)
def test_param_groups_partition_the_parameters(arch, groups):
    net = build_network(ModelParams(arch=arch), PROTOS)
    found = net.param_groups()
    assert set(found) == groups
    ids = [id(p) for params in found.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}


def _reached(net, loss_fn) -> set[str]:
    net.zero_grad(set_to_none=True)
    loss_fn().backward()
    return {
        name
        for name, params in net.param_groups().items()
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    }


def test_gradients_reach_exactly_the_intended_groups():
    torch.manual_seed(0)
    net = build_network(QUICK, PROTOS)
    loss = PrototypeLoss.for_model(LossParams(), net)
    x, labels = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])
    fine = torch.zeros(4, 32, 32)
    fine[:, 4:12, 4:20] = 1
    has_fine = torch.ones(4, dtype=torch.bool)

    def term(name):
        return lambda: getattr(loss(net(x), labels, fine, has_fine), name)

    everything = {"backbone", "neck", "prototypes", "last_layer"}
    assert _reached(net, term("ce")) == everything
    assert _reached(net, term("clust")) == {"backbone", "neck", "prototypes"}
    assert _reached(net, term("sep")) == {"backbone", "neck", "prototypes"}
    assert _reached(net, term("fine")) == {"backbone", "neck", "prototypes"}
    assert _reached(net, term("ortho")) == {"prototypes"}
    assert _reached(net, lambda: loss.last_layer_loss(net(x), labels, net).l1) == {"last_layer"}
    # warm-up: backbone frozen
    for p in net.param_groups()["backbone"]:
        p.requires_grad_(False)
    assert _reached(net, term("total")) == {"neck", "prototypes", "last_layer"}
    # last-layer phase: only the last layer trains
    for name in ("neck", "prototypes"):
        for p in net.param_groups()[name]:
            p.requires_grad_(False)
    assert _reached(net, lambda: loss.last_layer_loss(net(x), labels, net).total) == {"last_layer"}


def test_set_prototype_to_a_latent_patch_gives_similarity_one_there():
    torch.manual_seed(0)
    net = build_network(QUICK, PROTOS)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        z3 = net.prototype_layer.latent(net.forward_features(x)[1])  # level 3, (1, 64, 4, 4), as compared
        j = net.level_slice(3).start + 1
        net.set_prototype(j, z3[0, :, 2, 1])
        maps = net(x).activations[1]
    local = j - net.level_slice(3).start
    assert maps[0, local, 2, 1] == pytest.approx(1.0, abs=1e-5)
    assert maps[0, local].argmax() == 2 * 4 + 1
    assert torch.equal(net.prototype_layer.prototype_vectors[j], z3[0, :, 2, 1])


def test_top_k_larger_than_the_map_is_a_clear_error():
    params = PrototypeParams(top_k=(4, 2, 1, 5))
    net = build_network(QUICK, params)
    with pytest.raises(ValueError, match="prototypes.top_k = 5 does not fit a 2 x 2 map"):
        net(torch.rand(1, 1, 32, 32))


def test_bad_input_shape_is_a_clear_error():
    net = build_network(QUICK, PROTOS)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(1, 2, 32, 32))


def test_build_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    a = build_model(QUICK, PROTOS, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_model(QUICK, PROTOS, seed=7)
    c = build_model(QUICK, PROTOS, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["prototype_layer.prototype_vectors"], sc["prototype_layer.prototype_vectors"])


def test_backbone_width_scales_channels():
    assert VGGBackbone(0.25).out_channels == {2: 32, 3: 64, 4: 128, 5: 128}
    with pytest.raises(ValueError, match="model.width"):
        VGGBackbone(1.5)
