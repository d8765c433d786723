"""The prototype layer g: cosine (eq. 2), focal (eq. 3) and IAIA-BL's log similarity against direct loops."""

from __future__ import annotations

import math

import pytest
import torch

from fpnpipe.model.prototypes import PrototypeLayer, focal_similarity, topk_mean
from fpnpipe.model.similarity import CosineSimilarity, cosine_similarity_maps, log_similarity_maps


def _loop_cosine(z: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    b_, d_, h_, w_ = z.shape
    out = torch.zeros(b_, p.shape[0], h_, w_, dtype=torch.float64)
    for b in range(b_):
        for j in range(p.shape[0]):
            for h in range(h_):
                for w in range(w_):
                    u = [float(z[b, k, h, w]) for k in range(d_)]
                    v = [float(p[j, k]) for k in range(d_)]
                    dot = sum(a * c for a, c in zip(u, v, strict=True))
                    out[b, j, h, w] = dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(c * c for c in v)))
    return out


def test_cosine_by_hand():
    z = torch.zeros(1, 3, 1, 3)
    z[0, :, 0, 0] = torch.tensor([3.0, 4.0, 0.0])
    z[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])
    z[0, :, 0, 2] = torch.tensor([-1.0, 0.0, 0.0])
    p = torch.tensor([[4.0, 3.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]])
    s = cosine_similarity_maps(z, p)[0, :, 0]  # (m, W)
    assert s[0, 0] == pytest.approx(24 / 25)
    assert s[1, 1] == pytest.approx(0.0) and s[2, 2] == pytest.approx(-1.0) and s[2, 1] == pytest.approx(1.0)


def test_cosine_against_a_direct_loop():
    torch.manual_seed(0)
    z, p = torch.randn(2, 5, 3, 4), torch.randn(3, 5)
    torch.testing.assert_close(cosine_similarity_maps(z, p).double(), _loop_cosine(z, p), atol=1e-6, rtol=0)


def test_cosine_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    z, p = torch.randn(1, 8, 3, 3), torch.randn(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = cosine_similarity_maps(z.bfloat16(), p)
    assert s.dtype == torch.float32
    torch.testing.assert_close(s.double(), _loop_cosine(z.bfloat16().float(), p), atol=1e-5, rtol=0)


def test_focal_and_topk_by_hand():
    maps = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert focal_similarity(maps, 2).item() == pytest.approx((4 + 3) / 2 - 10 / 4)
    assert focal_similarity(maps, 1).item() == pytest.approx(4 - 2.5)
    assert topk_mean(maps, 4).item() == pytest.approx(2.5)
    assert focal_similarity(maps, 4).item() == pytest.approx(0.0)


def test_focal_against_a_direct_loop():
    torch.manual_seed(1)
    maps = torch.randn(2, 3, 4, 5)
    k = 3
    got = focal_similarity(maps, k)
    for b in range(2):
        for j in range(3):
            values = sorted((float(v) for v in maps[b, j].flatten()), reverse=True)
            expected = sum(values[:k]) / k - sum(values) / len(values)
            assert got[b, j].item() == pytest.approx(expected, abs=1e-6)


def test_log_similarity_by_hand_and_against_a_loop():
    z = torch.zeros(1, 2, 1, 1)
    p = torch.tensor([[3.0, 4.0]])
    assert log_similarity_maps(z, p).item() == pytest.approx(math.log(6 / (5 + 1e-4)), rel=1e-6)
    torch.manual_seed(2)
    z, p = torch.rand(2, 4, 2, 3), torch.rand(3, 4)
    got = log_similarity_maps(z, p)
    for b in range(2):
        for j in range(3):
            for h in range(2):
                for w in range(3):
                    d = math.sqrt(sum((float(z[b, k, h, w]) - float(p[j, k])) ** 2 for k in range(4)))
                    assert got[b, j, h, w].item() == pytest.approx(math.log((d + 1) / (d + 1e-4)), rel=1e-5)


def test_log_similarity_gradient_is_finite_where_a_prototype_equals_a_patch():
    z = torch.rand(1, 4, 2, 2)
    p = z[0, :, 1, 1].clone().view(1, 4).requires_grad_(True)
    log_similarity_maps(z, p).sum().backward()
    assert torch.isfinite(p.grad).all()


def test_layer_pools_each_level_with_its_own_k():
    torch.manual_seed(3)
    counts = {2: (1, 0), 3: (0, 0), 5: (1, 2)}
    layer = PrototypeLayer(counts, dim=4, top_k={2: 3, 3: 1, 5: 2}, similarity=CosineSimilarity())
    feats = [torch.randn(2, 4, 4, 4), torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)]
    sims, maps = layer(feats)
    assert layer.prototype_class.tolist() == [0, 0, 1, 1] and layer.prototype_level.tolist() == [2, 5, 5, 5]
    assert [tuple(m.shape) for m in maps] == [(2, 1, 4, 4), (2, 0, 2, 2), (2, 3, 2, 2)]
    p = layer.prototype_vectors.detach()
    for b in range(2):
        for j, (level_feat, k) in enumerate([(feats[0], 3), (feats[2], 2), (feats[2], 2), (feats[2], 2)]):
            values = sorted(_loop_cosine(level_feat[b : b + 1], p[j : j + 1]).flatten().tolist(), reverse=True)
            expected = sum(values[:k]) / k - sum(values) / len(values)
            assert sims[b, j].item() == pytest.approx(expected, abs=1e-5)


def test_layer_without_focal_is_plain_topk():
    torch.manual_seed(4)
    layer = PrototypeLayer({5: (1, 1)}, dim=3, top_k={5: 2}, similarity=CosineSimilarity(), focal=False)
    feats = [torch.randn(1, 3, 3, 3)]
    sims, maps = layer(feats)
    torch.testing.assert_close(sims, maps[0].flatten(2).topk(2, dim=2).values.mean(2))
    values = sorted(maps[0][0, 1].flatten().tolist(), reverse=True)
    assert sims[0, 1].item() == pytest.approx((values[0] + values[1]) / 2)


def test_set_prototypes_in_one_call():
    layer = PrototypeLayer({2: (2, 1)}, dim=3, top_k={2: 1}, similarity=CosineSimilarity())
    layer.set_prototypes(torch.tensor([2, 0]), torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert layer.prototype_vectors[2].tolist() == [1.0, 2.0, 3.0]
    assert layer.prototype_vectors[0].tolist() == [4.0, 5.0, 6.0]
    with pytest.raises(ValueError, match="shape"):
        layer.set_prototype(1, torch.zeros(4))


def test_border_cells_from_the_fraction_of_the_crop_side():
    layer = PrototypeLayer({2: (1,)}, dim=2, top_k={2: 1}, similarity=CosineSimilarity(), border_fraction=0.2)
    # cell i of n is centred at (i + 0.5) / n of the side: left out while that is below 0.2
    assert [layer.border_cells(n) for n in (24, 12, 6, 2)] == [5, 2, 1, 0]
    assert PrototypeLayer({2: (1,)}, dim=2, top_k={2: 1}, similarity=CosineSimilarity()).border_cells(24) == 0


def test_border_cells_take_no_part_in_pooling_but_the_maps_are_returned_raw():
    torch.manual_seed(1)
    layer = PrototypeLayer({3: (1, 1)}, dim=4, top_k={3: 2}, similarity=CosineSimilarity(),
                           border_fraction=0.2)  # 1 cell of a 6 x 6 map
    z = torch.randn(2, 4, 6, 6)
    maps = cosine_similarity_maps(z, layer.prototype_vectors)
    pooled, (shown,) = layer([z])
    inner = maps[..., 1:-1, 1:-1]
    expected = inner.flatten(2).topk(2, dim=2).values.mean(2) - inner.flatten(2).mean(2)
    torch.testing.assert_close(pooled, expected)
    # The whole map, border included, is what metrics, explanations and the fine-annotation loss see.
    torch.testing.assert_close(shown, maps)
    masked = layer.fill_border(maps, float("-inf"))
    assert torch.isinf(masked[..., 0, :]).all() and torch.equal(masked[..., 1:-1, 1:-1], inner)


def test_a_border_that_leaves_no_patch_is_a_clear_error():
    layer = PrototypeLayer({5: (1,)}, dim=3, top_k={5: 1}, similarity=CosineSimilarity(),
                           border_fraction=0.45)  # 3 of 6 cells per edge
    with pytest.raises(ValueError, match="prototypes.border_fraction"):
        layer([torch.randn(1, 3, 6, 6)])


def test_centred_latent_ignores_what_every_patch_of_a_crop_shares():
    torch.manual_seed(5)
    z = torch.randn(2, 4, 5, 5)
    shared = torch.randn(2, 4, 1, 1) * 10  # a feature every patch of a crop carries (e.g. its overall level)
    plain = PrototypeLayer({3: (1, 1)}, dim=4, top_k={3: 2}, similarity=CosineSimilarity())
    centred = PrototypeLayer({3: (1, 1)}, dim=4, top_k={3: 2}, similarity=CosineSimilarity(), center=True)
    centred.load_state_dict(plain.state_dict())
    torch.testing.assert_close(centred([z + shared])[1][0], centred([z])[1][0])
    assert not torch.allclose(plain([z + shared])[1][0], plain([z])[1][0])
    expected = cosine_similarity_maps(z - z.mean(dim=(2, 3), keepdim=True), plain.prototype_vectors)
    torch.testing.assert_close(centred([z])[1][0], expected)
    # A prototype set to a centred patch is that patch's own best match, at similarity 1.
    centred.set_prototype(0, centred.latent(z)[0, :, 2, 3])
    assert centred([z])[1][0][0, 0, 2, 3].item() == pytest.approx(1.0, abs=1e-5)
