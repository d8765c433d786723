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
    with torch.no_grad():
        features = model.forward_features(images)
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
    nearest = find_nearest_patches(model, make_loader(dataset, 3, shuffle=False), runtime)
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
    nearest = find_nearest_patches(model, make_loader(dataset, 4, shuffle=False), runtime)
    apply_projection(model, nearest)
    record = projection_record(model, dataset, nearest, runtime)
    assert record.duplicate_of[rows[1]] == rows[0] and record.duplicate_of[rows[0]] == -1
    assert (np.delete(record.duplicate_of, rows[1]) == -1).all()


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
