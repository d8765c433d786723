"""Equation (4) term by term, against values computed by hand and direct formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fpnpipe.classes import CLASSES
from fpnpipe.config import LossParams, ModelParams, PrototypeParams, parse_params
from fpnpipe.config.model import IAIABL_FINE_INSIDE, IAIABL_FINE_OUTSIDE
from fpnpipe.losses import (
    PrototypeLoss,
    cluster_loss,
    fine_annotation_loss,
    l1_wrong_class,
    orthogonality_loss,
    prototype_groups,
    separation_loss,
)
from fpnpipe.model.base import PrototypeOutput
from fpnpipe.model.build import build_network

# IAIA-BL's coefficient matrices (0 / 1), whose values the hand computations below use.
INSIDE = torch.tensor([list(IAIABL_FINE_INSIDE[c]) for c in CLASSES])
OUTSIDE = torch.tensor([list(IAIABL_FINE_OUTSIDE[c]) for c in CLASSES])


def test_cluster_and_separation_by_hand():
    sims = torch.tensor([[0.9, 0.1, 0.5, -0.2], [0.3, 0.8, 0.7, 0.0]])
    proto_class = torch.tensor([0, 0, 1, 1])
    labels = torch.tensor([0, 1])
    assert cluster_loss(sims, labels, proto_class).item() == pytest.approx(-(0.9 + 0.7) / 2)
    assert separation_loss(sims, labels, proto_class).item() == pytest.approx((0.5 + 0.8) / 2)


def test_cluster_and_separation_against_a_loop():
    torch.manual_seed(0)
    sims, proto_class, labels = torch.randn(5, 7), torch.tensor([0, 1, 2, 3, 0, 1, 2]), torch.tensor([0, 3, 2, 1, 0])
    own = [max(float(sims[b, j]) for j in range(7) if proto_class[j] == labels[b]) for b in range(5)]
    other = [max(float(sims[b, j]) for j in range(7) if proto_class[j] != labels[b]) for b in range(5)]
    assert cluster_loss(sims, labels, proto_class).item() == pytest.approx(-sum(own) / 5, abs=1e-6)
    assert separation_loss(sims, labels, proto_class).item() == pytest.approx(sum(other) / 5, abs=1e-6)


def test_orthogonality_zero_for_orthogonal_prototypes_of_any_length():
    p = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.5]])
    assert orthogonality_loss(p, torch.tensor([0, 0, 0])).item() == pytest.approx(0.0, abs=1e-7)


def test_orthogonality_by_hand():
    # two prototypes 60 degrees apart: Gram off-diagonals 0.5, so ||G - I||_F^2 = 2 * 0.25
    p = torch.tensor([[1.0, 0.0], [7 * 0.5, 7 * math.sqrt(3) / 2]])
    assert orthogonality_loss(p, torch.tensor([0, 0])).item() == pytest.approx(0.5, abs=1e-6)
    # the same two in different groups: nothing to penalise
    assert orthogonality_loss(p, torch.tensor([0, 1])).item() == pytest.approx(0.0, abs=1e-7)


def test_orthogonality_against_a_loop_over_groups():
    torch.manual_seed(1)
    p = torch.randn(7, 4)
    groups = prototype_groups(torch.tensor([0, 0, 1, 0, 0, 1, 1]), torch.tensor([2, 2, 2, 3, 3, 3, 3]), 4)
    assert groups.tolist() == [8, 8, 9, 12, 12, 13, 13]
    expected = 0.0
    for g in set(groups.tolist()):
        rows = [p[j] / p[j].norm() for j in range(7) if groups[j] == g]
        for a in range(len(rows)):
            for b in range(len(rows)):
                expected += (float(rows[a] @ rows[b]) - (1.0 if a == b else 0.0)) ** 2
    assert orthogonality_loss(p, groups).item() == pytest.approx(expected, abs=1e-5)


def _half_mask(s: int) -> torch.Tensor:
    mask = torch.zeros(1, s, s)
    mask[:, :, : s // 2] = 1  # the left half is the annotation
    return mask


def _fine(act, mask, labels, proto_class, has_fine=None, inside=INSIDE, outside=OUTSIDE):
    if has_fine is None:
        has_fine = torch.ones(len(labels), dtype=torch.bool)
    return fine_annotation_loss([act], mask, has_fine, torch.tensor(labels), torch.tensor(proto_class), inside, outside)


def test_fine_zero_inside_positive_outside():
    inside_only = torch.zeros(1, 1, 4, 4)
    inside_only[..., :2] = 1.0
    outside_only = 1.0 - inside_only
    mask = _half_mask(4)
    # own-class prototype (image circumscribed, prototype circumscribed): free inside, penalised outside
    assert _fine(inside_only, mask, [0], [0]).item() == 0.0
    assert _fine(outside_only, mask, [0], [0]).item() == pytest.approx(math.sqrt(8) / 4)
    # another class's prototype is penalised inside too
    assert _fine(inside_only, mask, [0], [1]).item() == pytest.approx(math.sqrt(8) / 4)


def test_fine_negative_image_penalises_margin_prototypes_everywhere():
    act = torch.full((1, 2, 4, 4), 0.5)
    empty = torch.zeros(1, 4, 4)
    # prototype 0 is circumscribed (penalised: RMS 0.5), prototype 1 is negative (coefficient 0): mean 0.25
    assert _fine(act, empty, [3], [0, 3]).item() == pytest.approx(0.25)


def test_fine_ignores_negative_cosines():
    assert _fine(torch.full((1, 1, 4, 4), -1.0), _half_mask(4), [0], [1]).item() == 0.0


def test_fine_averages_over_prototypes_and_annotated_images_only():
    act = torch.zeros(3, 2, 4, 4)
    act[0, 0] = 1.0  # image 0, circumscribed prototype, everywhere: inside coef 0, outside RMS sqrt(8)/4
    act[1, 1] = 1.0  # image 1 (indistinct), indistinct prototype everywhere: same
    act[2] = 1.0  # image 2 has no annotation: ignored whatever it activates
    mask = _half_mask(4).expand(3, -1, -1)
    got = _fine(act, mask, [0, 1, 2], [0, 1], has_fine=torch.tensor([True, True, False]))
    per_image = (math.sqrt(8) / 4 + 0.0) / 2
    assert got.item() == pytest.approx(per_image)
    assert _fine(act, mask, [0, 1, 2], [0, 1], has_fine=torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_fine_coefficients_are_indexed_image_class_then_prototype_class():
    inside = torch.zeros(4, 4)
    inside[1, 2] = 3.0
    zero = torch.zeros(4, 4)
    act = torch.zeros(1, 1, 4, 4)
    act[..., :2] = 1.0
    mask = _half_mask(4)
    assert _fine(act, mask, [1], [2], inside=inside, outside=zero).item() == pytest.approx(3 * math.sqrt(8) / 4)
    assert _fine(act, mask, [2], [1], inside=inside, outside=zero).item() == 0.0


def test_fine_scale_independent_of_crop_and_batch_size():
    act = torch.full((1, 1, 2, 2), 0.6)  # bilinear upsampling of a constant stays constant
    at_8 = _fine(act, _half_mask(8), [0], [1])
    at_16 = _fine(act, _half_mask(16), [0], [1])
    # inside and outside both weigh 1 here: 2 * sqrt(0.5 * 0.6^2) at any crop size
    assert at_8.item() == pytest.approx(2 * 0.6 * math.sqrt(0.5))
    assert at_16.item() == pytest.approx(at_8.item())
    twice = _fine(act.expand(2, -1, -1, -1), _half_mask(8).expand(2, -1, -1), [0, 0], [1])
    assert twice.item() == pytest.approx(at_8.item())


def test_fine_against_a_direct_loop():
    torch.manual_seed(2)
    levels = [torch.randn(3, 2, 4, 4), torch.randn(3, 1, 2, 2)]
    proto_class = torch.tensor([0, 3, 1])
    labels = torch.tensor([1, 3, 0])
    mask = (torch.rand(3, 8, 8) > 0.5).float()
    has_fine = torch.tensor([True, True, False])
    got = fine_annotation_loss(levels, mask, has_fine, labels, proto_class, INSIDE, OUTSIDE)
    maps = [m for lv in levels for m in lv.unbind(1)]  # per prototype (B, H, W), global order
    total = 0.0
    for b in range(2):
        per_proto = []
        for j, m in enumerate(maps):
            a = F.interpolate(m[b][None, None], size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
            a = torch.clamp(a, min=0)
            rms_in = math.sqrt(sum(float(a[y, x] * mask[b, y, x]) ** 2 for y in range(8) for x in range(8))) / 8
            rms_out = math.sqrt(sum(float(a[y, x] * (1 - mask[b, y, x])) ** 2 for y in range(8) for x in range(8))) / 8
            y_b, c_j = int(labels[b]), int(proto_class[j])
            per_proto.append(float(INSIDE[y_b, c_j]) * rms_in + float(OUTSIDE[y_b, c_j]) * rms_out)
        total += sum(per_proto) / len(per_proto)
    assert got.item() == pytest.approx(total / 2, abs=1e-5)


def test_fine_gradient_is_finite_with_zero_activation_inside():
    act = torch.zeros(1, 1, 4, 4)
    act[..., 2:] = 0.7
    act.requires_grad_(True)
    _fine(act, _half_mask(4), [0], [1]).backward()
    assert torch.isfinite(act.grad).all() and act.grad[..., 2:].abs().sum() > 0


def test_l1_wrong_class_by_hand():
    weight = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert l1_wrong_class(weight, torch.tensor([0, 1])).item() == pytest.approx(5.0)


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    net = build_network(ModelParams(), PrototypeParams())
    x = torch.rand(4, 1, 32, 32)
    fine = torch.zeros(4, 32, 32)
    fine[:, 8:24, 8:12] = 1
    return net, x, torch.tensor([0, 1, 2, 3]), fine, torch.tensor([True, False, True, True])


def test_prototype_loss_combines_the_terms_of_equation_4(model_and_batch):
    net, x, labels, fine, has_fine = model_and_batch
    lambdas = {"lambda_clust": 0.5, "lambda_sep": 0.25, "lambda_ortho": 2.0, "lambda_fine": 3.0}
    params = parse_params({"loss": lambdas}).loss
    out = net(x)
    terms = PrototypeLoss.for_model(params, net)(out, labels, fine, has_fine)
    ce = -out.logits.log_softmax(1)[torch.arange(4), labels].mean()
    assert terms.ce.item() == pytest.approx(ce.item(), abs=1e-6)
    # Default cluster_similarity "patch": each prototype's best patch similarity, taken here by a loop.
    best = torch.zeros(4, net.num_prototypes)
    for b in range(4):
        for level, maps in zip(net.levels, out.activations, strict=True):
            for k, j in enumerate(range(net.level_slice(level).start, net.level_slice(level).stop)):
                best[b, j] = maps[b, k].max()
    assert terms.clust.item() == pytest.approx(cluster_loss(best, labels, net.prototype_class).item())
    assert terms.sep.item() == pytest.approx(separation_loss(best, labels, net.prototype_class).item())
    pooled = parse_params({"loss": {**lambdas, "cluster_similarity": "pooled"}}).loss
    pooled_terms = PrototypeLoss.for_model(pooled, net)(out, labels, fine, has_fine)
    assert pooled_terms.clust.item() == pytest.approx(cluster_loss(out.similarities, labels,
                                                                   net.prototype_class).item())
    groups = prototype_groups(net.prototype_class, net.prototype_level, 4)
    assert terms.ortho.item() == pytest.approx(orthogonality_loss(out.prototypes, groups).item())
    expected = terms.ce + 0.5 * terms.clust + 0.25 * terms.sep + 2.0 * terms.ortho + 3.0 * terms.fine
    assert terms.total.item() == pytest.approx(expected.item(), abs=1e-6)
    assert terms.fine.item() > 0 and terms.l1.item() == 0


def test_zero_lambda_term_is_logged_without_gradient(model_and_batch):
    net, x, labels, fine, has_fine = model_and_batch
    params = parse_params({"loss": {"lambda_fine": 0.0}}).loss
    terms = PrototypeLoss.for_model(params, net)(net(x), labels, fine, has_fine)
    assert terms.fine.item() > 0 and not terms.fine.requires_grad and terms.clust.requires_grad


def test_last_layer_loss(model_and_batch):
    net, x, labels, _, _ = model_and_batch
    loss = PrototypeLoss.for_model(LossParams(), net)
    terms = loss.last_layer_loss(net(x), labels, net)
    assert terms.l1.item() == pytest.approx(32 * 3 * 0.5)  # 32 prototypes, 3 wrong classes each, |-0.5|
    assert terms.total.item() == pytest.approx(terms.ce.item() + 1e-4 * 48, abs=1e-6)


def test_black_box_loss_is_cross_entropy_only():
    net = build_network(ModelParams(arch="vgg16"), PrototypeParams())
    loss = PrototypeLoss.for_model(LossParams(), net)
    out = net(torch.rand(2, 1, 32, 32))
    labels = torch.tensor([1, 2])
    terms = loss(out, labels, torch.zeros(2, 32, 32), torch.ones(2, dtype=torch.bool))
    assert terms.total.item() == pytest.approx(F.cross_entropy(out.logits, labels).item())
    assert all(t.item() == 0 for t in (terms.clust, terms.sep, terms.ortho, terms.fine, terms.l1))


def test_iaiabl_loss_uses_log_similarities_and_no_orthogonality():
    torch.manual_seed(0)
    net = build_network(ModelParams(arch="iaiabl"), PrototypeParams())
    out = net(torch.rand(2, 1, 32, 32))
    labels = torch.tensor([0, 2])
    loss = PrototypeLoss.for_model(LossParams(), net)
    terms = loss(out, labels, torch.ones(2, 32, 32), torch.ones(2, dtype=torch.bool))
    assert terms.ortho.item() == 0
    assert terms.clust.item() == pytest.approx(cluster_loss(out.similarities, labels, net.prototype_class).item())


def test_loss_rejects_mismatched_masks(model_and_batch):
    net, x, labels, fine, has_fine = model_and_batch
    with pytest.raises(ValueError, match="fine"):
        PrototypeLoss.for_model(LossParams(), net)(net(x), labels, fine[:2], has_fine)


def test_output_probabilities_are_the_softmax():
    out = PrototypeOutput(torch.tensor([[0.0, math.log(3.0)]]))
    torch.testing.assert_close(out.probabilities, torch.tensor([[0.25, 0.75]]))


def test_matrix_terms_stay_float32_under_autocast():
    torch.manual_seed(3)
    p = torch.randn(6, 8)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    act = [torch.rand(2, 3, 4, 4)]
    mask = (torch.rand(2, 8, 8) > 0.5).float()
    args = (mask, torch.ones(2, dtype=torch.bool), torch.tensor([0, 1]), torch.tensor([0, 1, 2]), INSIDE, OUTSIDE)
    plain_ortho, plain_fine = orthogonality_loss(p, groups), fine_annotation_loss(act, *args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ortho, fine = orthogonality_loss(p, groups), fine_annotation_loss(act, *args)
    assert ortho.dtype == fine.dtype == torch.float32
    assert ortho.item() == pytest.approx(plain_ortho.item(), rel=1e-6)
    assert fine.item() == pytest.approx(plain_fine.item(), rel=1e-6)


def test_relative_fine_activation_cannot_be_hidden_by_a_shift():
    # One prototype of class 0 on one class-0 image; its map peaks outside the annotated left half.
    fine = torch.zeros(1, 4, 4)
    fine[0, :, :2] = 1
    peak = torch.zeros(1, 1, 4, 4)
    peak[0, 0, 1, 3] = 0.8
    args = (fine, torch.tensor([True]), torch.tensor([0]), torch.tensor([0]), INSIDE, OUTSIDE)
    shifted = [peak - 0.9]  # every cosine negative: the absolute form sees nothing
    assert fine_annotation_loss(shifted, *args, relative=False).item() == 0
    relative = fine_annotation_loss(shifted, *args, relative=True).item()
    assert relative > 0
    assert relative == pytest.approx(fine_annotation_loss([peak], *args, relative=True).item())
    # By hand: relative map = peak - 0.05 (its mean); upsampling 4 -> 4 is the identity.
    a = (peak[0, 0] - 0.05).clamp(min=0)
    assert relative == pytest.approx(float((a * (1 - fine[0])).square().sum().sqrt() / 4), rel=1e-5)
