"""Stage B: the batched projection against a brute-force search, the applied projection, and the record."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from fpnpipe.config import ModelParams, PrototypeParams, TrainParams
from fpnpipe.data.dataset import CropDataset, make_loader
from fpnpipe.data.projection_record import read_projection_record, write_projection_record
from fpnpipe.data.schema import CropSet
from fpnpipe.metrics.activation import high_activation_box
from fpnpipe.model.build import build_network
from fpnpipe.runtime import setup_runtime
from fpnpipe.train.projection import apply_projection, find_nearest_patches, projection_record

S = 32


def _crops(n: int = 10, seed: int = 0) -> CropSet:
    rng = np.random.default_rng(seed)
    return CropSet(
        images=rng.random((n, S, S), dtype=np.float32),
        fine=np.zeros((n, S, S), np.uint8),
        has_fine=np.ones(n, bool),
        roi=np.zeros((n, S, S), np.uint8),
        label=np.arange(n, dtype=np.int64) % 4,
        split=np.array(["train"] * n, dtype=object),
        patient_id=np.array([f"P{i // 2}" for i in range(n)], dtype=object),
        image_id=np.array([f"img{i}" for i in range(n)], dtype=object),
        source_box=np.zeros((n, 4), np.float32),
    )


def _model(border_fraction: float = 0.0):
    per_class = {c: (1, 1, 0, 2) for c in ("circumscribed", "indistinct", "spiculated", "negative")}
    protos = PrototypeParams.model_validate_json(json.dumps({"per_class": per_class, "top_k": [2, 1, 1, 1],
                                                             "border_fraction": border_fraction}))
    torch.manual_seed(0)
    return build_network(ModelParams(fpn_channels=8), protos).eval()


def _brute_force(model, images: torch.Tensor, labels: np.ndarray):
    """For every prototype: loop over own-class images and every allowed cell of its level."""
    with torch.no_grad():  # the maps the prototypes are compared with (centred: prototypes.center_latent)
        features = [model.prototype_layer.latent(z) for z in model.forward_features(images)]
    best = {}
    for level, z in zip(model.levels, features, strict=True):
        n = model.prototype_layer.border_cells(z.shape[2])
        rows = model.level_slice(level)
        for j in range(rows.start, rows.stop):
            p = model.prototype_layer.prototype_vectors[j].detach()
            found = (-2.0, None)
            for b in range(len(labels)):
                if labels[b] != int(model.prototype_class[j]):
                    continue
                for r in range(n, z.shape[2] - n):
                    for c in range(n, z.shape[3] - n):
                        v = z[b, :, r, c]
                        cos = float(v @ p / (v.norm() * p.norm()))
                        if cos > found[0]:
                            found = (cos, (b, r, c, v.clone()))
            best[j] = found
    return best


@pytest.mark.parametrize("border_fraction", [0.0, 0.25])
def test_batched_projection_matches_a_brute_force_search(border_fraction):
    model = _model(border_fraction)
    crops = _crops()
    dataset = CropDataset(crops)
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    nearest = find_nearest_patches(model, make_loader(dataset, 3, shuffle=False), runtime, distinct="none")
    expected = _brute_force(model, dataset.images, crops.label)
    for j, (cos, (b, r, c, v)) in expected.items():
        assert nearest.similarity[j].item() == pytest.approx(cos, abs=1e-5)
        assert int(nearest.source[j]) == b and nearest.grid[j].tolist() == [r, c]
        torch.testing.assert_close(nearest.vectors[j], v)
        assert int(crops.label[b]) == int(model.prototype_class[j])  # only its own class's images


def test_projected_model_and_its_record():
    model = _model(0.25)
    crops = _crops()
    dataset = CropDataset(crops)
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    nearest = find_nearest_patches(model, make_loader(dataset, 4, shuffle=False), runtime)
    apply_projection(model, nearest)
    record = projection_record(model, dataset, nearest, runtime, batch_size=3)
    with torch.no_grad():
        out = model(dataset.images[nearest.source])
    for j in range(model.num_prototypes):
        level = int(model.prototype_level[j])
        k = j - model.level_slice(level).start
        maps = out.activations[model.levels.index(level)]
        r, c = nearest.grid[j].tolist()
        assert maps[j, k, r, c].item() == pytest.approx(1.0, abs=1e-5)  # every prototype is a real patch
        assert record.source_image_id[j] == crops.image_id[nearest.source[j]]
        np.testing.assert_array_equal(record.source_image[j], crops.images[nearest.source[j]])
        assert tuple(record.rf_box[j]) == model.receptive_field(level, r, c, S)
        assert tuple(record.high_box[j]) == high_activation_box(record.self_activation[j])


def test_duplicates_are_flagged():
    model = _model()
    crops = _crops()
    dataset = CropDataset(crops)
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    # Prototypes 0 and 4 are the level-2 prototypes of class 0 ... make two of class 0's level-5 ones equal.
    rows = [j for j in range(model.num_prototypes)
            if int(model.prototype_class[j]) == 0 and int(model.prototype_level[j]) == 5]
    with torch.no_grad():
        model.prototype_layer.prototype_vectors[rows[1]] = model.prototype_layer.prototype_vectors[rows[0]]
    nearest = find_nearest_patches(model, make_loader(dataset, 4, shuffle=False), runtime, distinct="none")
    apply_projection(model, nearest)
    record = projection_record(model, dataset, nearest, runtime)
    assert record.duplicate_of[rows[1]] == rows[0] and record.duplicate_of[rows[0]] == -1
    assert (np.delete(record.duplicate_of, rows[1]) == -1).all()
    assert record.duplicate_counts() == {"duplicates": 1, "displaced": 0}


def _twins(distinct: str, crops: CropSet | None = None):
    """Project a model whose two level-5 prototypes of class 0 are equal (plain projection would put both on
    one patch); returns the model (before projection), the twins' rows, the result and the crops."""
    model = _model()
    crops = crops if crops is not None else _crops(n=16)
    rows = [j for j in range(model.num_prototypes)
            if int(model.prototype_class[j]) == 0 and int(model.prototype_level[j]) == 5]
    with torch.no_grad():
        model.prototype_layer.prototype_vectors[rows[1]] = model.prototype_layer.prototype_vectors[rows[0]]
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    nearest = find_nearest_patches(model, make_loader(CropDataset(crops), 5, shuffle=False), runtime, distinct=distinct)
    return model, rows, nearest, crops


def _cosines(model, level: int, j: int, images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) patch similarity of prototype j on every image, border cells at -inf."""
    with torch.no_grad():
        z = model.prototype_layer.latent(model.forward_features(images)[model.levels.index(level)])
        maps = model.prototype_layer.similarity_maps(z, model.prototype_layer.prototype_vectors[j : j + 1])[:, 0]
        return model.prototype_layer.fill_border(maps[:, None], float("-inf"))[:, 0]


def test_distinct_images_give_the_twin_the_best_patch_of_another_crop():
    model, (a, b), nearest, crops = _twins("image")
    assert int(nearest.source[a]) != int(nearest.source[b])
    assert not bool(nearest.displaced[a]) and bool(nearest.displaced[b])  # equal similarities: the lower index wins
    own = np.flatnonzero(crops.label == 0)
    maps = _cosines(model, 5, b, torch.from_numpy(crops.images[own])[:, None])
    per_image = maps.flatten(1).amax(1)
    per_image[own.tolist().index(int(nearest.source[a]))] = float("-inf")  # taken by its twin
    assert nearest.similarity[b].item() == pytest.approx(per_image.max().item(), abs=1e-5)
    assert int(nearest.source[b]) == int(own[int(per_image.argmax())])
    plain = find_nearest_patches(model, make_loader(CropDataset(crops), 5, shuffle=False),
                                 setup_runtime(TrainParams(device="cpu"), 0), distinct="none")
    groups = (model.prototype_class * 10 + model.prototype_level).tolist()
    for j in range(model.num_prototypes):
        mates = [i for i in range(model.num_prototypes) if groups[i] == groups[j] and i != j]
        assert all(int(nearest.source[i]) != int(nearest.source[j]) for i in mates)  # distinct crops per group
        if bool(nearest.displaced[j]):  # moved only because a mate had taken its own best crop
            assert any(int(nearest.source[i]) == int(plain.source[j]) for i in mates)
            assert nearest.similarity[j] <= plain.similarity[j]
        else:  # the others kept their own best patch
            assert int(nearest.source[j]) == int(plain.source[j])
            assert nearest.grid[j].tolist() == plain.grid[j].tolist()


def test_distinct_cells_may_share_a_crop_but_not_a_cell():
    model, (a, b), nearest, crops = _twins("cell")
    assert (int(nearest.source[a]), *nearest.grid[a].tolist()) != (int(nearest.source[b]), *nearest.grid[b].tolist())
    own = np.flatnonzero(crops.label == 0)
    maps = _cosines(model, 5, b, torch.from_numpy(crops.images[own])[:, None])
    r, c = nearest.grid[a].tolist()
    maps[own.tolist().index(int(nearest.source[a])), r, c] = float("-inf")
    assert nearest.similarity[b].item() == pytest.approx(maps.max().item(), abs=1e-5)


def test_exact_ties_go_to_the_lowest_rows():
    crops = _crops(n=16)
    crops = CropSet(**{**{f: getattr(crops, f) for f in crops.__dataclass_fields__},
                       "images": np.repeat(crops.images[:1], 16, axis=0)})  # every crop the same image
    model, rows, _, _ = _twins("none", crops)
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    one_batch = make_loader(CropDataset(crops), 16, shuffle=False)  # one batch: bitwise equal maps
    plain = find_nearest_patches(model, one_batch, runtime, distinct="none")
    distinct = find_nearest_patches(model, one_batch, runtime, distinct="image")
    for c in range(4):
        own = np.flatnonzero(crops.label == c)
        for level in (2, 3, 5):
            group = [j for j in range(model.num_prototypes)
                     if int(model.prototype_class[j]) == c and int(model.prototype_level[j]) == level]
            assert all(int(plain.source[j]) == own[0] for j in group)  # the lowest row of the class
            # distinct crops: the group's first served takes the lowest row, the next the next row
            assert sorted(int(distinct.source[j]) for j in group) == own[: len(group)].tolist()
    # the twins (equal similarity everywhere): the lower prototype index is served first
    first, second = np.flatnonzero(crops.label == 0)[:2]
    assert int(distinct.source[rows[0]]) == first and int(distinct.source[rows[1]]) == second


def test_a_class_with_fewer_crops_than_prototypes_keeps_a_duplicate():
    crops = _crops(n=16)
    keep = np.flatnonzero((crops.label != 0) | (np.arange(16) == 0))  # one crop of class 0
    model, (a, b), nearest, _ = _twins("image", crops.select(keep))
    assert int(nearest.source[a]) == int(nearest.source[b]) == 0 and not bool(nearest.displaced[b])


def test_record_file_round_trip_is_byte_stable(tmp_path):
    model = _model()
    dataset = CropDataset(_crops())
    runtime = setup_runtime(TrainParams(device="cpu"), 0)
    nearest = find_nearest_patches(model, make_loader(dataset, 4, shuffle=False), runtime)
    apply_projection(model, nearest)
    record = projection_record(model, dataset, nearest, runtime)
    write_projection_record(tmp_path / "a.h5", record)
    write_projection_record(tmp_path / "b.h5", record)
    digests = [hashlib.sha256((tmp_path / name).read_bytes()).digest() for name in ("a.h5", "b.h5")]
    assert digests[0] == digests[1]
    back = read_projection_record(tmp_path / "a.h5")
    for name in record.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(back, name), getattr(record, name))
