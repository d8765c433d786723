"""Training on several processes (gloo on the CPU): the same weights and projection as one process with the
same global batch; the gradient bookkeeping behind it; a failing rank stops the others with a clear message."""

from __future__ import annotations

import json
import time
from functools import partial

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
from fpnpipe.data.dataset import CropDataset, Shard, TrainEpoch
from fpnpipe.data.schema import CropSet
from fpnpipe.distributed import Dist, RankFailure, launch
from fpnpipe.losses import LossTerms, PrototypeLoss
from fpnpipe.model.build import build_network
from fpnpipe.runtime import setup_runtime
from fpnpipe.train.loop import NORMALISATION, joint_lambdas, rank_objective
from fpnpipe.train.schedule import run_finetune, run_warmup

S = 32
TOLERANCE = 2e-5
"""Largest weight difference accepted between 1 and 2 processes after the 11 optimizer steps of `_train`.

Two processes compute the same sums in another order: each convolves half the batch (other kernel blocking),
and the gradient is the all-reduced mean of the halves instead of one pass over the batch. In float32 that
moves each step's gradients by a few units of 1e-7 relative; Adam's steps are about lr = 1e-3 * m / sqrt(v),
so a relative change e of a gradient moves a step by about e * 1e-3. Eleven steps of 1e-3 with e < 1e-2
leave at most about 1e-4; what was measured is below 1e-6 (test output), and 2e-5 leaves room for other
CPUs while still failing for any real mistake (a wrong share weight changes steps by 1e-4 and more, see
test_a_wrong_share_weight_is_caught)."""


def _crops(n: int, seed: int) -> CropSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % 4
    images = rng.random((n, S, S), dtype=np.float32) * 0.2
    fine = np.zeros((n, S, S), np.uint8)
    for i, y in enumerate(labels):
        lo = 4 + 4 * int(y)
        images[i, lo : lo + 8, lo : lo + 8] += 0.7
        fine[i, lo : lo + 8, lo : lo + 8] = 1
    has_fine = (np.arange(n) % 3) != 1  # a third not annotated: the fine term averages over the others
    return CropSet(images=images, fine=fine, has_fine=has_fine, roi=fine.copy(), label=labels,
                   split=np.array(["train"] * n, dtype=object),
                   patient_id=np.array([f"P{i}" for i in range(n)], dtype=object),
                   image_id=np.array([f"i{i}" for i in range(n)], dtype=object),
                   source_box=np.zeros((n, 4), np.float32))


def _net():
    per_class = {c: (1, 1, 0, 2) for c in ("circumscribed", "indistinct", "spiculated", "negative")}
    protos = PrototypeParams.model_validate_json(json.dumps({"per_class": per_class, "top_k": [2, 1, 1, 1]}))
    torch.manual_seed(0)
    return build_network(ModelParams(fpn_channels=8), protos)


def _train(n_train: int, dist: Dist) -> dict | None:
    """Warm-up (1 epoch) then fine-tuning (2 epochs, each projected, 1 last-layer epoch) on 13 training crops in
    global batches of 6: batches of 6, 6 and 1, so with 2 processes one share of the last batch is empty."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # both runs alike
    try:
        return _train_one_thread(n_train, dist)
    finally:  # the one-process run happens inside pytest: later tests get the threads they started with
        torch.set_num_threads(threads)


def _train_one_thread(n_train: int, dist: Dist) -> dict | None:
    runtime = setup_runtime(TrainParams(device="cpu"), 3, dist)
    net = _net()
    # lambda_fine 1, not the default 30: a stronger fine term lets Adam's per-weight normalisation amplify
    # float rounding (to 1.3e-4 on a backbone weight after fine-tuning at 10; README "Several processes"), which
    # would blur what this test checks, that the two runs take the same steps.
    loss = PrototypeLoss.for_model(LossParams(lambda_fine=1.0), net)
    train, val = _crops(n_train, 0), _crops(9, 1)
    augmented = CropDataset(train, AugmentParams(), seed=3)
    run_warmup(net, loss, augmented, CropDataset(val), WarmupParams(epochs=1, batch_size=6), TrainParams(), runtime,
               3, lambda metrics: None)
    warm = {k: v.clone() for k, v in net.state_dict().items()}
    logged: list[dict[str, float]] = []
    result = run_finetune(net, loss, augmented, CropDataset(train), CropDataset(val),
                          FinetuneParams(epochs=2, batch_size=6, project_every=1, last_layer_epochs=1),
                          ProjectParams(batch_size=4), TrainParams(), runtime, 3, logged.append)
    if not dist.main:
        return None
    return {"warm": warm, "final": result.state, "nearest": result.nearest, "logged": logged}


@pytest.fixture(scope="module")
def runs() -> tuple[dict, dict]:
    one = launch(partial(_train, 13), 1, cuda=False)
    start = time.perf_counter()
    two = launch(partial(_train, 13), 2, cuda=False)
    print(f"2 processes: {time.perf_counter() - start:.1f} s")
    assert one is not None and two is not None
    return one, two


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_two_processes_train_the_weights_of_one(runs):
    one, two = runs
    warm, final = _max_difference(one["warm"], two["warm"]), _max_difference(one["final"], two["final"])
    print(f"max |weight difference|: after warm-up {warm:.2e}, after fine-tuning {final:.2e}")
    assert warm <= TOLERANCE and final <= TOLERANCE
    moved = _max_difference(one["warm"], one["final"])
    assert moved > 100 * TOLERANCE  # training did move the weights: the comparison means something


def test_two_processes_project_onto_the_same_patches(runs):
    one, two = runs
    a, b = one["nearest"], two["nearest"]
    assert torch.equal(a.source, b.source) and torch.equal(a.grid, b.grid) and torch.equal(a.displaced, b.displaced)
    torch.testing.assert_close(a.similarity, b.similarity, rtol=0, atol=1e-5)


def test_two_processes_log_the_curves_of_one(runs):
    one, two = runs
    assert [m.keys() for m in one["logged"]] == [m.keys() for m in two["logged"]]
    for m1, m2 in zip(one["logged"], two["logged"], strict=True):
        for key in m1:
            assert m1[key] == pytest.approx(m2[key], abs=1e-4, nan_ok=True), key


def test_every_loss_term_has_a_normalisation():
    assert set(NORMALISATION) == set(LossTerms._fields) - {"total"}


def _sharded_gradient(net, loss, dataset: CropDataset, world: int, weights_fn=None) -> torch.Tensor:
    """The sum over `world` shares of one global batch of each share's rank_objective gradient / world
    (what DDP's averaging gives), computed in one process."""
    epoch = TrainEpoch(dataset, len(dataset), seed=0, epoch=0, balance=False, device=torch.device("cpu"))
    total = None
    for rank in range(world):
        epoch.dist = Dist(rank, world)
        (b, shard), = list(epoch)
        net.zero_grad(set_to_none=True)
        out = net(b.images)
        terms = loss(out, b.labels, b.fine, b.has_fine)
        lambdas = joint_lambdas(loss) if weights_fn is None else weights_fn(joint_lambdas(loss))
        rank_objective(terms, out.logits, lambdas, shard).backward()
        grad = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                          for p in net.parameters()]) / world
        total = grad if total is None else total + grad
    return total


def test_shares_add_up_to_the_gradient_of_the_whole_batch():
    net, dataset = _net(), CropDataset(_crops(11, 2))
    loss = PrototypeLoss.for_model(LossParams(), net)
    whole = _sharded_gradient(net, loss, dataset, 1)
    for world in (2, 3, 12):  # 12 > 11 crops: one share is empty
        torch.testing.assert_close(_sharded_gradient(net, loss, dataset, world), whole, rtol=1e-4, atol=1e-6)


def test_a_wrong_share_weight_is_caught():
    # Averaging the fine term over each share's own annotated crops (instead of the batch's) is a mistake
    # the check above must see: drop the normalisation of that term and the gradients differ.
    net, dataset = _net(), CropDataset(_crops(11, 2))
    loss = PrototypeLoss.for_model(LossParams(), net)
    whole = _sharded_gradient(net, loss, dataset, 1)
    original = NORMALISATION["fine"]
    NORMALISATION["fine"] = "batch"
    try:
        wrong = _sharded_gradient(net, loss, dataset, 3)
    finally:
        NORMALISATION["fine"] = original
    assert float((wrong - whole).abs().max()) > 1e-4


def test_shares_of_a_batch_split_its_crops_and_annotations():
    dataset = CropDataset(_crops(13, 0))
    shards = []
    for rank in range(2):
        epoch = TrainEpoch(dataset, 6, seed=1, epoch=0, balance=True, device=torch.device("cpu"), dist=Dist(rank, 2))
        shards.append([(b.index.tolist(), s) for b, s in epoch])
    whole = TrainEpoch(dataset, 6, seed=1, epoch=0, balance=True, device=torch.device("cpu"))
    for k, (b, s) in enumerate(whole):
        (i0, s0), (i1, s1) = shards[0][k], shards[1][k]
        assert i0 + i1 == b.index.tolist()  # the two shares are the batch, in order
        assert s0.global_size == s1.global_size == s.size
        assert s0.annotated + s1.annotated == s0.global_annotated == s.annotated
    assert [len(i) for i, _ in shards[1]] == [3, 3, 0]  # 13 = 6 + 6 + 1: the last share of rank 1 is empty
    assert shards[1][-1][1] == Shard(0, 1, 0, shards[0][-1][1].global_annotated, 2)


def _fails_on_rank_1(dist: Dist) -> int:
    if dist.rank == 1:
        raise ValueError("crop 7 is broken")
    dist.barrier()  # rank 0 waits here for a rank that will never come
    return 0


def test_a_failing_rank_stops_every_rank_with_a_clear_message():
    start = time.perf_counter()
    with pytest.raises(RankFailure, match=r"rank 1 of 2 failed: ValueError: crop 7 is broken; every rank was stopped"):
        launch(_fails_on_rank_1, 2, cuda=False)
    assert time.perf_counter() - start < 60  # not the collective's 30-minute timeout
