"""Benchmark: one training step of FPN-IAIA-BL against the bare VGG-16 features, same input, same process.

A step is forward, loss, backward and an Adam step over every parameter (the fine-tuning stage C case).
fpn_iaiabl uses the whole equation (4) loss with every image annotated (the most expensive case); the
reference is the vgg16 black box (VGG-16 features, global pooling, one linear layer: the bare features plus
a head of a few thousand multiply-adds) with cross entropy. The two alternate, rep by rep, so drifts in
machine speed hit both. Prints images/s for both and, last, `train_step ratio <fpn_iaiabl step time / vgg16
step time>` from each model's fastest step (the ratio of the medians is printed before it).

At full width and 224 px with d = 256 the pyramid and prototype layer add about 17% of VGG-16's FLOPs;
the target is a ratio <= 1.30. On CUDA the step runs under bf16 autocast; tensors are channels_last on
every device unless --contiguous asks for NCHW on the CPU.

    python bench/train_step.py                       # full width, 224 px, batch 2, CPU (about half a minute on 2 cores)
    python bench/train_step.py --device cuda --batch 32
    python bench/train_step.py --width 0.125 --size 96 --fpn-channels 64   # the quickstart profile
    python bench/train_step.py --threads 1           # on a CPU that other busy processes share
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext

import torch

from fpnpipe.classes import CLASSES
from fpnpipe.config import LossParams, ModelParams, PrototypeParams
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.build import Model, build_network


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0, help="model.width (default 1.0)")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels, multiple of 16 (default 224)")
    parser.add_argument("--batch", type=int, default=2, help="images per step (default 2)")
    parser.add_argument("--fpn-channels", type=int, default=256, help="model.fpn_channels d (default 256)")
    parser.add_argument("--reps", type=int, default=10, help="timed steps per model (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first (default 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--contiguous",
        action="store_true",
        help="keep NCHW tensors on the CPU (default: channels_last on every device, which also spares oneDNN "
        "its layout conversions on the CPU)",
    )
    args = parser.parse_args(argv)
    if args.size % 16 or args.size < 32:
        parser.error("--size must be a multiple of 16, at least 32")
    if args.batch < 1 or args.reps < 1 or args.warmup < 0:
        parser.error("--batch and --reps must be >= 1, --warmup >= 0")
    return args


class Stepper:
    """One model, its loss and optimizer; `step()` runs one training step and returns its seconds."""

    def __init__(
        self, model: Model, batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool
    ) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.model = model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.loss = PrototypeLoss.for_model(LossParams(), self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-5)
        self.batch = batch

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def step(self) -> float:
        b = self.batch
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()
        self._sync()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast:
            output = self.model(b["x"])
        terms = self.loss(output, b["labels"], b["fine"], b["has_fine"])
        terms.total.backward()
        self.optimizer.step()
        self._sync()
        return time.perf_counter() - start


def make_batch(args: argparse.Namespace, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    """Random grey crops, labels cycling through the classes, and a ring-shaped fine mask on every image."""
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(args.size), torch.arange(args.size), indexing="ij")
    radius = ((yy - args.size / 2) ** 2 + (xx - args.size / 2) ** 2).sqrt()
    ring = ((radius > args.size / 5) & (radius < args.size / 4)).to(torch.uint8)
    batch = {
        "x": x,
        "labels": torch.arange(args.batch) % len(CLASSES),
        "fine": ring.expand(args.batch, -1, -1).contiguous(),
        "has_fine": torch.ones(args.batch, dtype=torch.bool),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    if channels_last:
        batch["x"] = batch["x"].contiguous(memory_format=torch.channels_last)
    return batch


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    torch.manual_seed(args.seed)
    prototypes = PrototypeParams()
    fpn = build_network(ModelParams(arch="fpn_iaiabl", width=args.width, fpn_channels=args.fpn_channels), prototypes)
    ref = build_network(ModelParams(arch="vgg16", width=args.width), prototypes)
    channels_last = device.type == "cuda" or not args.contiguous
    batch = make_batch(args, device, channels_last)
    steppers = {name: Stepper(m, batch, device, channels_last) for name, m in (("fpn_iaiabl", fpn), ("vgg16", ref))}
    load = os.getloadavg()[0]
    print(
        f"device {device} ({torch.get_num_threads()} CPU threads), width {args.width}, size {args.size}, "
        f"batch {args.batch}, d {args.fpn_channels}, prototypes {fpn.num_prototypes}, reps {args.reps}, "
        f"{'channels_last' if channels_last else 'NCHW'}, load average {load:.2f}",
        flush=True,
    )
    if device.type == "cpu" and load > 0.5 and torch.get_num_threads() > 1:
        print(
            f"warning: load average {load:.2f}: if other processes are still busy, threads that wait on each "
            "other distort CPU timings (the ratio comes out too high); then rerun idle or with --threads 1.",
            flush=True,
        )
    for _ in range(args.warmup):
        for s in steppers.values():
            s.step()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for rep in range(args.reps):
        for name, s in steppers.items():
            times[name].append(s.step())
        print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    for name, t in times.items():
        print(
            f"{name}: fastest step {min(t) * 1000:.1f} ms ({args.batch / min(t):.2f} images/s), "
            f"median {statistics.median(t) * 1000:.1f} ms ({args.batch / statistics.median(t):.2f} images/s)"
        )
    median_ratio = statistics.median(times["fpn_iaiabl"]) / statistics.median(times["vgg16"])
    print(f"ratio of medians {median_ratio:.3f}")
    # The fastest steps: interference from other processes only ever adds time, so the minimum is the
    # estimate of each step's own cost that varies least between runs.
    ratio = min(times["fpn_iaiabl"]) / min(times["vgg16"])
    print(f"train_step ratio {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
