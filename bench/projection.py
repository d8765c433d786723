"""Benchmark: prototype projection (stage B) on a fixed model and data set, against
  (a) one plain no-grad forward pass of the model over the same crops (the floor; target <= 1.10x), and
  (b) the reference push algorithm of ProtoPNet's and IAIA-BL's public push loops, reimplemented below: per
      batch, the latent maps and every prototype's similarity (distance) map copied to NumPy, then one
      prototype at a time: its class's images picked out of the copy, max (ProtoPNet: min distance), and on
      an improvement argmax, unravel and a copy of the latent patch. It is checked to pick the same patches
      as fpnpipe's projection with project.distinct = none (its rule). Target: >= 10x faster than (b).

The projection timed is fpnpipe.train.projection.project (search, then the prototypes replaced), with the
default duplicate-free assignment (project.distinct = image) and with none; the projection record the stage
also writes (one more forward pass over the prototypes' source crops only) is timed on its own line, and so
is the search alone (both algorithms served the same latent maps, computed beforehand): on a CPU the
forward pass is most of both, on a GPU it is cheap and the search is what differs. Each variant runs
--reps times, alternating, and its fastest run counts (other processes only ever add time).

    python bench/projection.py                       # quickstart model (1/8 width, 96 px, d 64), 512 crops
    python bench/projection.py --profile paper --crops 64 --per-class 10   # full width, 224 px, d 256
    python bench/projection.py --device cuda --profile paper --crops 2048 --per-class 10

Prints the timings and, as its last two lines, `projection vs forward <x>` and `projection speedup vs
reference push <x>`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch

from fpnpipe.classes import CLASSES
from fpnpipe.config import ModelParams, PrototypeParams, TrainParams
from fpnpipe.data.dataset import CropDataset, batches_in_order
from fpnpipe.data.schema import CropSet
from fpnpipe.model.build import build_network
from fpnpipe.model.network import PrototypeNetwork
from fpnpipe.runtime import setup_runtime
from fpnpipe.train.projection import describe_projection, project

PROFILES = {
    "quickstart": {"width": 0.125, "size": 96, "fpn_channels": 64},
    "paper": {"width": 1.0, "size": 224, "fpn_channels": 256},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quickstart")
    parser.add_argument("--crops", type=int, default=512, help="training crops searched (default 512)")
    parser.add_argument("--per-class", type=int, default=2, help="prototypes per class per FPN level (default 2)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> tuple[PrototypeNetwork, CropDataset]:
    profile = PROFILES[args.profile]
    per_class = {c: [args.per_class] * 4 for c in CLASSES}
    prototypes = PrototypeParams.model_validate_json(json.dumps({"per_class": per_class}))
    torch.manual_seed(0)
    model = build_network(ModelParams(width=profile["width"], fpn_channels=profile["fpn_channels"]), prototypes)
    assert isinstance(model, PrototypeNetwork)
    size, n = profile["size"], args.crops
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    images = np.empty((n, size, size), np.float32)
    for i in range(n):  # smooth random tissue with a bright blob: latent patches that differ
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.08, 0.25)
        images[i] = 0.3 + 0.1 * np.sin(rng.uniform(5, 20) * xx + rng.uniform(0, 6)) * np.cos(rng.uniform(5, 20) * yy)
        images[i] += 0.4 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
    images += rng.normal(0, 0.02, images.shape).astype(np.float32)
    crops = CropSet(images=images.clip(0, 1), fine=np.zeros((n, size, size), np.uint8), has_fine=np.zeros(n, bool),
                    roi=np.zeros((n, size, size), np.uint8), label=np.arange(n, dtype=np.int64) % len(CLASSES),
                    split=np.array(["train"] * n, dtype=object),
                    patient_id=np.array([f"P{i}" for i in range(n)], dtype=object),
                    image_id=np.array([f"I{i}" for i in range(n)], dtype=object),
                    source_box=np.zeros((n, 4), np.float32))
    return model, CropDataset(crops)


@torch.no_grad()
def forward_pass(model: PrototypeNetwork, data: CropDataset, batch: int, runtime) -> None:
    """(a): the model over every crop, nothing kept."""
    model.eval()
    for b in batches_in_order(data, np.arange(len(data)), batch, runtime.device, runtime.channels_last):
        with runtime.autocast():
            model(b.images)


@torch.no_grad()
def reference_push(model: PrototypeNetwork, data: CropDataset, batch: int, runtime) -> tuple[np.ndarray, np.ndarray]:
    """(b): the public push loops' algorithm (one prototype at a time over NumPy copies), with this model's
    similarity maximised instead of a distance minimised, and its border cells excluded as projection
    excludes them. Replaces the prototypes; returns (source row (m,), grid cell (m, 2))."""
    model.eval()
    m = model.num_prototypes
    proto_class = model.prototype_class.cpu().numpy()
    global_best = np.full(m, -np.inf)
    source = np.full(m, -1)
    grid = np.zeros((m, 2), np.int64)
    patches = model.prototype_layer.prototype_vectors.detach().cpu().numpy().copy()
    start = 0
    for b in batches_in_order(data, np.arange(len(data)), batch, runtime.device, runtime.channels_last):
        with runtime.autocast():
            features = model.forward_features(b.images)
        labels = b.labels.cpu().numpy()
        class_to_images: dict[int, list[int]] = {c: [] for c in range(len(CLASSES))}
        for i, y in enumerate(labels):
            class_to_images[int(y)].append(i)
        for level, z in zip(model.levels, features, strict=True):
            rows = model.level_slice(level)
            if rows.stop == rows.start:
                continue
            maps = model.prototype_layer.similarity_maps(z.float(), model.level_prototypes(level).float())
            maps = model.prototype_layer.fill_border(maps, float("-inf"))
            latent = np.copy(z.float().cpu().numpy())  # the public loops' protoL_input_
            similarity = np.copy(maps.cpu().numpy())  # ... and proto_dist_
            for j in range(rows.start, rows.stop):
                images = class_to_images[int(proto_class[j])]
                if not images:
                    continue
                maps_j = similarity[images][:, j - rows.start]
                best = np.amax(maps_j)
                if best > global_best[j]:
                    i, r, c = np.unravel_index(np.argmax(maps_j, axis=None), maps_j.shape)
                    global_best[j] = best
                    source[j] = start + images[i]
                    grid[j] = (r, c)
                    patches[j] = latent[images[i], :, r, c]
        start += len(labels)
    model.prototype_layer.set_prototypes(torch.arange(m), torch.from_numpy(patches))
    return source, grid


def fastest(runs: dict[str, Callable[[], object]], reps: int, sync: Callable[[], None]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(reps):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
        print(f"rep {rep + 1}/{reps}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    return {name: min(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> tuple[float, float]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = setup_runtime(TrainParams(device=args.device), 0)
    sync = (lambda: torch.cuda.synchronize(runtime.device)) if runtime.device.type == "cuda" else (lambda: None)
    model, data = build(args)
    model = runtime.prepare(model)
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    print(f"device {runtime.device} ({torch.get_num_threads()} CPU threads), profile {args.profile}, "
          f"{len(data)} crops, {model.num_prototypes} prototypes, batch {args.batch}", flush=True)

    def fresh() -> PrototypeNetwork:
        model.load_state_dict(start_state)
        return model

    results: dict[str, object] = {}
    runs: dict[str, Callable[[], object]] = {
        "forward": lambda: forward_pass(fresh(), data, args.batch, runtime),
        "projection": lambda: results.__setitem__("image", project(fresh(), data, args.batch, runtime, "image")),
        "projection (distinct none)": lambda: results.__setitem__("none",
                                                                  project(fresh(), data, args.batch, runtime, "none")),
        "reference push": lambda: results.__setitem__("reference", reference_push(fresh(), data, args.batch, runtime)),
    }
    best = fastest(runs, args.reps, sync)

    source, grid = results["reference"]  # type: ignore[misc]
    ours = results["none"]
    same = np.array_equal(source, ours.source.numpy()) and np.array_equal(grid, ours.grid.numpy())  # type: ignore[attr-defined]
    print(f"reference push and projection (distinct none) pick the same patches: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the reference push picked other patches: the comparison would be meaningless")

    # The search alone: the latent maps of every batch computed once, then served to both algorithms, which is
    # what remains of the difference where the forward pass is cheap (a GPU).
    with torch.no_grad():
        cached = [model.forward_features(b.images) for b in batches_in_order(
            data, np.arange(len(data)), args.batch, runtime.device, runtime.channels_last)]
    compute = model.forward_features
    served = iter(())

    def serve(_: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return next(served)

    def search(run: Callable[[], object]) -> Callable[[], object]:
        def go() -> object:
            nonlocal served
            served = iter(cached)
            return run()
        return go

    model.forward_features = serve  # type: ignore[method-assign]
    search_only = fastest({
        "projection search": search(lambda: project(fresh(), data, args.batch, runtime, "image")),
        "reference push search": search(lambda: reference_push(fresh(), data, args.batch, runtime)),
    }, args.reps, sync)
    model.forward_features = compute  # type: ignore[method-assign]

    project(fresh(), data, args.batch, runtime, "image")
    sync()
    start = time.perf_counter()
    describe_projection(model, data, results["image"], runtime, args.batch)  # type: ignore[arg-type]
    sync()
    record = time.perf_counter() - start

    for name, seconds in best.items():
        print(f"{name}: {seconds:.3f} s ({len(data) / seconds:,.1f} crops/s)")
    print(f"projection record (forward over the {model.num_prototypes} source crops): {record:.3f} s, "
          f"{record / best['forward']:.3f}x the forward pass")
    print(f"search alone (latent maps computed beforehand): projection {search_only['projection search']:.3f} s, "
          f"reference push {search_only['reference push search']:.3f} s: "
          f"{search_only['reference push search'] / search_only['projection search']:.1f}x")
    vs_forward = best["projection"] / best["forward"]
    speedup = best["reference push"] / best["projection"]
    print(f"projection vs forward {vs_forward:.3f}")
    print(f"projection speedup vs reference push {speedup:.3f}")
    return vs_forward, speedup


if __name__ == "__main__":
    main()
