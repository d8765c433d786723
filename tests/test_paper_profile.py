"""The paper profile (profiles/paper.yaml) as `dvc exp run` gets it: every key exists and validates, and the
model it describes -- full-width VGG-16 from an ImageNet-format weights file, 224 px, d = 256 -- trains one
batch and projects one batch on the CPU, so that a GPU run cannot fail on a shape, a key or a dtype."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from ruamel.yaml import YAML

from fpnpipe.classes import CLASSES
from fpnpipe.config import parse_params
from fpnpipe.data.dataset import CropDataset, TrainEpoch, batches_in_order
from fpnpipe.data.schema import CropSet
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.build import build_model
from fpnpipe.runtime import setup_runtime
from fpnpipe.train.loop import train_epoch
from fpnpipe.train.progress import StageProgress
from fpnpipe.train.projection import find_nearest_patches
from tests.conftest import ROOT

PROFILE = ROOT / "profiles/paper.yaml"
_spec = importlib.util.spec_from_file_location("set_params", ROOT / "profiles/set_params.py")
assert _spec is not None and _spec.loader is not None
profiles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profiles)


def _overridden(profile: dict[str, object], extra: dict[str, object]) -> dict:
    """params.yaml with each `-S key=value` of the profile applied, as DVC applies them (YAML-parsed values)."""
    params = YAML(typ="safe").load((ROOT / "params.yaml").read_text())
    args = profiles.set_params({**profile, **extra})
    for flag, pair in zip(args[::2], args[1::2], strict=True):
        assert flag == "-S"
        key, text = pair.split("=", 1)
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        assert leaf in node, f"{key}: not a key of params.yaml (dvc exp run -S would add it, validation refuse it)"
        node[leaf] = YAML(typ="safe").load(text)
    return params


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory):
    profile = profiles.read_profile(PROFILE)
    weights = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16().state_dict(), weights)  # torchvision's format, random values
    params = parse_params(_overridden(profile, {"model.pretrained": str(weights), "train.device": "cpu"}))
    return profile, params


def test_the_profile_is_the_paper_model(paper) -> None:
    profile, p = paper
    assert profile["train.device"] == "cuda" and p.train.device == "cpu"  # only the test runs it on the CPU
    assert (p.model.arch, p.model.width, p.model.fpn_channels, p.crop.size) == ("fpn_iaiabl", 1.0, 256, 224)
    assert p.finetune.lr.backbone < p.finetune.lr.neck


def test_the_make_target_passes_valid_arguments() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "profiles/set_params.py"), str(PROFILE)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[::2] == ["-S"] * (len(out) // 2) and "crop.size=224" in out and "model.width=1.0" in out


def _crops(n: int, size: int) -> CropSet:
    rng = np.random.default_rng(0)
    fine = np.zeros((n, size, size), np.uint8)
    fine[:, 80:140, 80:140] = 1
    return CropSet(images=rng.random((n, size, size), dtype=np.float32), fine=fine, has_fine=np.ones(n, bool),
                   roi=fine.copy(), label=np.arange(n, dtype=np.int64) % len(CLASSES),
                   split=np.array(["train"] * n, dtype=object),
                   patient_id=np.array([f"P{i}" for i in range(n)], dtype=object),
                   image_id=np.array([f"I{i}" for i in range(n)], dtype=object),
                   source_box=np.zeros((n, 4), np.float32))


def test_one_training_step_and_one_projection_batch_on_the_cpu(paper) -> None:
    _, p = paper
    runtime = setup_runtime(p.train, p.seed.train)
    model = runtime.prepare(build_model(p.model, p.prototypes, seed=p.seed.train))  # reads the ImageNet-format file
    first = model.backbone.features[0].weight
    assert first.shape[0] == 64 and model.prototype_layer.dim == 256
    loss_fn = PrototypeLoss.for_model(p.loss, model)
    data = CropDataset(_crops(2, p.crop.size), p.augment, seed=p.seed.train)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    before = copy.deepcopy(model.neck.state_dict())
    with StageProgress("paper profile", 1.0) as progress:
        stats = train_epoch(model, TrainEpoch(data, 2, p.seed.train, 0, False, runtime.device), loss_fn, optimizer,
                            runtime, progress, "one step")
    assert np.isfinite(stats["total"]) and stats["fine"] > 0  # every term of eq. (4), at 224 px
    assert any(not torch.equal(before[k], v) for k, v in model.neck.state_dict().items())
    batch = batches_in_order(CropDataset(_crops(2, p.crop.size)), np.arange(2), 2, runtime.device)
    nearest = find_nearest_patches(model, list(batch), runtime, p.project.distinct)
    own = (model.prototype_class.cpu() < 2).numpy()  # the 2 crops are of classes 0 and 1
    np.testing.assert_array_equal((nearest.source >= 0).numpy(), own)
    assert int(nearest.grid.max()) < p.crop.size // 4  # cells of the 56 x 56 level-2 map at most
