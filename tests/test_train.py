"""Training pieces: paired augmentation, per-group freezing, the stage A / C schedules, CPU determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fpnpipe.config import (
    AugmentParams,
    FinetuneParams,
    LossParams,
    ModelParams,
    ProjectParams,
    PrototypeParams,
    TrainParams,
    WarmupParams,
)
from fpnpipe.data.augment import augment_batch, sample_uniforms
from fpnpipe.data.dataset import CropDataset
from fpnpipe.data.schema import CropSet
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.build import build_network
from fpnpipe.runtime import setup_runtime
from fpnpipe.train.schedule import run_finetune, run_warmup

S = 32
NO_INTENSITY = AugmentParams(gamma=(1.0, 1.0), window_jitter=0.0)


def _crops(n: int = 16, seed: int = 0) -> CropSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 4
    images = rng.random((n, S, S), dtype=np.float32) * 0.2
    fine = np.zeros((n, S, S), np.uint8)
    for i, y in enumerate(labels):  # a class-dependent bright square, its border as the fine annotation
        lo = 4 + 4 * int(y)
        images[i, lo : lo + 8, lo : lo + 8] += 0.7
        fine[i, lo : lo + 8, lo : lo + 8] = 1
        fine[i, lo + 2 : lo + 6, lo + 2 : lo + 6] = 0
    return CropSet(images=images, fine=fine, has_fine=np.ones(n, bool), roi=fine.copy(), label=labels,
                   split=np.array(["train"] * n, dtype=object),
                   patient_id=np.array([f"P{i}" for i in range(n)], dtype=object),
                   image_id=np.array([f"i{i}" for i in range(n)], dtype=object),
                   source_box=np.zeros((n, 4), np.float32))


def _net():
    per_class = {c: (1, 1, 0, 1) for c in ("circumscribed", "indistinct", "spiculated", "negative")}
    protos = PrototypeParams.model_validate_json(json.dumps({"per_class": per_class, "top_k": [2, 1, 1, 1]}))
    torch.manual_seed(0)
    return build_network(ModelParams(fpn_channels=8), protos)


def test_augmentation_moves_image_and_mask_together():
    image = torch.zeros(16, 1, S, S)
    image[:, 0, 5:12, 18:27] = 1.0
    mask = (image > 0.5).to(torch.uint8)
    params = NO_INTENSITY.model_copy(update={"affine_degrees": 0.0, "affine_translate": 0.0, "affine_scale": (1.0,
                                                                                                              1.0)})
    u = sample_uniforms(3, 0, np.arange(16))
    aug_image, aug_mask = augment_batch(image, mask, params, u)
    assert torch.equal(aug_mask.bool(), aug_image > 0.5)  # flips and 90-degree turns land on pixel centres
    placements = {tuple(m.nonzero()[0].tolist()) for m in aug_mask[:, 0]}
    assert len(placements) >= 5  # of the 8 flip / turn combinations, 16 draws reach most
    for k in range(16):  # each is one of the 8 exact symmetries of the square
        symmetries = [torch.rot90(f, t, (-2, -1)) for f in (mask[k], mask[k].flip(-1)) for t in range(4)]
        assert any(torch.equal(aug_mask[k], s) for s in symmetries)
    aug_image, aug_mask = augment_batch(image, mask, NO_INTENSITY, u)
    overlap = (aug_mask.bool() & (aug_image > 0.5)).sum() / aug_mask.bool().sum()
    assert overlap > 0.9  # the affine part resamples both with one transform


def test_reflect_fill_brings_in_no_air_at_the_crop_edge():
    image = torch.full((8, 1, S, S), 0.6)
    mask = torch.ones(8, 1, S, S, dtype=torch.uint8)
    params = NO_INTENSITY.model_copy(update={"affine_degrees": 30.0, "affine_scale": (0.8, 0.8)})
    u = sample_uniforms(1, 0, np.arange(8))
    zero_image, zero_mask = augment_batch(image, mask, params, u)
    assert (zero_image < 0.01).any() and (zero_mask == 0).any()  # turned and shrunk: air in the corners
    image_r, mask_r = augment_batch(image, mask, params.model_copy(update={"fill": "reflect"}), u)
    torch.testing.assert_close(image_r, image)  # a constant crop stays constant: its mirror is the crop
    assert bool((mask_r == 1).all())


def test_augmentation_of_a_draw_does_not_depend_on_its_batch():
    crops = _crops()
    dataset = CropDataset(crops, AugmentParams(), seed=4)
    dataset.set_epoch(1)
    rows, draws = np.array([3, 7, 3, 0]), np.array([10, 11, 12, 13])
    batch = dataset.gather(rows, torch.device("cpu"), draws=draws)
    alone = dataset.gather(rows[1:2], torch.device("cpu"), draws=draws[1:2])
    torch.testing.assert_close(batch.images[1:2], alone.images, rtol=0, atol=1e-6)
    assert not torch.equal(batch.images[0], batch.images[2])  # the same crop drawn twice: two augmentations
    torch.testing.assert_close(dataset[(7, 11)][0], alone.images[0], rtol=0, atol=1e-6)  # the per-sample path


def test_uniforms_are_a_fixed_function_of_seed_epoch_and_draw():
    a = sample_uniforms(5, 2, np.arange(1000))
    assert a.shape == (1000, 10) and a.min() >= 0 and a.max() < 1
    np.testing.assert_array_equal(a[123:124], sample_uniforms(5, 2, np.array([123])))
    assert not np.array_equal(a, sample_uniforms(5, 3, np.arange(1000)))
    assert not np.array_equal(a, sample_uniforms(6, 2, np.arange(1000)))
    # uniform enough: each column's deciles hold 10% +- 2.5% of the 1000 draws, columns uncorrelated
    for column in a.T:
        assert np.all(np.abs(np.histogram(column, bins=10, range=(0, 1))[0] / 1000 - 0.1) < 0.025)
    assert np.abs(np.corrcoef(a.T) - np.eye(10)).max() < 0.1


def test_augmentation_is_fixed_by_seed_epoch_and_index():
    dataset = CropDataset(_crops(), AugmentParams(), seed=7)
    dataset.set_epoch(2)
    first, again = dataset[3][0], dataset[3][0]
    dataset.set_epoch(3)
    assert torch.equal(first, again) and not torch.equal(first, dataset[3][0])


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_warmup_freezes_the_backbone_and_trains_the_rest():
    net, runtime = _net(), setup_runtime(TrainParams(device="cpu"), 0)
    loss = PrototypeLoss.for_model(LossParams(), net)
    before = {name: _params(getattr(net, name)) for name in ("backbone", "neck", "last_layer")}
    protos = net.prototype_layer.prototype_vectors.detach().clone()
    data = CropDataset(_crops(), NO_INTENSITY)
    run_warmup(net, loss, data, CropDataset(_crops(seed=1)), WarmupParams(epochs=1, batch_size=8), TrainParams(),
               runtime, 0, lambda metrics: None)
    assert all(torch.equal(a, b) for a, b in zip(before["backbone"], net.backbone.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before["last_layer"], net.last_layer.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before["neck"], net.neck.parameters(), strict=True))
    assert not torch.equal(protos, net.prototype_layer.prototype_vectors)


def test_finetune_returns_a_projected_model_and_logs_every_epoch():
    net, runtime = _net(), setup_runtime(TrainParams(device="cpu"), 0)
    loss = PrototypeLoss.for_model(LossParams(), net)
    train, push, val = CropDataset(_crops(), NO_INTENSITY), CropDataset(_crops()), CropDataset(_crops(seed=2))
    logged = []
    params = FinetuneParams(epochs=3, batch_size=8, project_every=2, last_layer_epochs=1)
    result = run_finetune(net, loss, train, push, val, params, ProjectParams(batch_size=8), TrainParams(), runtime, 0,
                          logged.append)
    assert len(logged) == 3 and result.epoch in (2, 3)
    assert sum("projected/val/auroc_average" in m for m in logged) == 2  # after epochs 2 and 3
    assert [m.get("projection") for m in logged] == [None, 1.0, 2.0]  # the projection marks
    assert all("train/l1" not in m for m in logged)  # no L1 in the joint loss ...
    assert all("projected/last_layer/l1" in m for m in logged[1:])  # ... only in the last-layer phase
    assert all(m["projected/duplicates"] == 0 for m in logged[1:])
    net.load_state_dict(result.state)
    net.eval()
    with torch.no_grad():
        out = net(push.images[result.nearest.source])
    for j in range(net.num_prototypes):  # every prototype of the kept model is a real training patch
        level = int(net.prototype_level[j])
        maps = out.activations[net.levels.index(level)]
        r, c = result.nearest.grid[j].tolist()
        assert maps[j, j - net.level_slice(level).start, r, c].item() == pytest.approx(1.0, abs=1e-4)


def test_same_seed_same_weights_on_cpu():
    weights = []
    for _ in range(2):
        net, runtime = _net(), setup_runtime(TrainParams(device="cpu"), 11)
        loss = PrototypeLoss.for_model(LossParams(), net)
        run_warmup(net, loss, CropDataset(_crops(), AugmentParams(), seed=11), CropDataset(_crops(seed=1)),
                   WarmupParams(epochs=2, batch_size=8), TrainParams(), runtime, 11, lambda metrics: None)
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_balanced_epochs_draw_every_class_equally_and_deterministically():
    from fpnpipe.data.dataset import epoch_order

    labels = np.r_[np.zeros(10, int), np.ones(20, int), np.full(30, 2), np.full(540, 3)]  # negatives 90%
    draws = np.concatenate([epoch_order(labels, seed=0, epoch=e, balance=True) for e in range(20)])
    shares = np.bincount(labels[draws], minlength=4) / draws.size
    assert np.all(np.abs(shares - 0.25) < 0.02), shares
    np.testing.assert_array_equal(epoch_order(labels, 0, 3, True), epoch_order(labels, 0, 3, True))
    assert not np.array_equal(epoch_order(labels, 0, 3, True), epoch_order(labels, 0, 4, True))
    plain = epoch_order(labels, seed=0, epoch=0, balance=False)
    np.testing.assert_array_equal(np.sort(plain), np.arange(labels.size))  # each crop once


def test_a_crop_drawn_twice_in_an_epoch_gets_two_augmentations():
    dataset = CropDataset(_crops(), AugmentParams(), seed=7)
    first, second = dataset[(3, 0)][0], dataset[(3, 1)][0]
    assert not torch.equal(first, second)
    assert torch.equal(dataset[(3, 1)][0], second)


def test_validation_and_model_selection_read_the_margin_auroc_among_lesions():
    from fpnpipe.data.dataset import make_loader
    from fpnpipe.inference import predict
    from fpnpipe.metrics.classification import all_crops_auroc_table, detection_auroc, margin_auroc_table
    from fpnpipe.train.schedule import selection_key, validate

    net, runtime = _net(), setup_runtime(TrainParams(device="cpu"), 0)
    dataset = CropDataset(_crops(n=24, seed=3))
    loader = make_loader(dataset, 8, shuffle=False)
    val = validate(net, dataset, 8, runtime)
    probs, labels = predict(net, loader, runtime)
    assert val["auroc_average"] == margin_auroc_table(labels, probs)["average"]
    assert val["auroc_average"] != all_crops_auroc_table(labels, probs)["average"]
    assert val["detection_auroc"] == detection_auroc(labels, probs)
    # selection: margin AUROC first; detection only breaks ties; undefined counts as -1
    assert selection_key({"auroc_average": 0.8, "detection_auroc": 0.5}) > selection_key(
        {"auroc_average": 0.7, "detection_auroc": 1.0})
    assert selection_key({"auroc_average": 0.8, "detection_auroc": 0.9}) > selection_key(
        {"auroc_average": 0.8, "detection_auroc": 0.6})
    assert selection_key({"auroc_average": float("nan"), "detection_auroc": 1.0}) < selection_key(
        {"auroc_average": 0.1, "detection_auroc": 0.0})
