"""Benchmark: images/s delivered by the training data path at the paper profile (224 px crops, batch 64)
against the model's own training step, in the same process.

Measured here, on whatever device runs it:
  * HDF5 read: read_crops of a crops.h5 written with the real schema (once per stage: crops stay in memory);
  * before: the data path fpnpipe had until now, rebuilt below as it was: a DataLoader over samples, each
    flipped / turned / affine-transformed by torchvision on its own, then collated;
  * now: TrainEpoch, which gathers a batch from the crops in memory and augments it in one affine_grid +
    grid_sample on the batch's device (the GPU on CUDA, where the crops also sit when they fit);
  * now, host side only: what stays on the CPU when the augmentation runs on a GPU (the epoch's order, each
    draw's random values, the 2x3 matrices; and the row gather when the crops are too large for the GPU --
    they stay on the host when they take more than a quarter of its free memory: 35 GB on an H200, some
    175,000 crops at 224 px, against CBIS-DDSM's few thousand);
  * the model's training step: fpn_iaiabl at full width, d = 256, forward + loss + backward + Adam.

A data path starves the GPU when it delivers fewer images/s than the GPU trains. Without a GPU, the GPU's
rate is estimated from FLOPs: VGG-16 takes about 15.5 GFLOPs per 224 px forward, a training step about 3x
that, FPN-IAIA-BL's pyramid and prototypes about 17% more (bench/train_step.py); at an assumed sustained
--gpu-tflops (default 400: about half of an H200's dense bf16 peak of ~990 TFLOP/s, what large convolutional
training reaches) that is ~7,400 images/s. The last line prints the ratio of the data path's rate on the host
side (now, crops on the GPU) to that estimate: above 1, the GPU would not wait for data. The augmentation
itself then runs on the GPU: one grid_sample pass over 64 x 224 x 224 pixels reads and writes some 60 MB,
tens of microseconds at an H200's memory bandwidth, against ~9 ms for the training step of 64 images.

    python bench/data_path.py                    # about a minute on 2 CPU cores
    python bench/data_path.py --device cuda      # on a GPU: the model step and the on-device augmentation measured
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode

from fpnpipe.classes import CLASSES
from fpnpipe.config import AugmentParams, LossParams, ModelParams, PrototypeParams
from fpnpipe.data.augment import sample_uniforms, sampling_matrices
from fpnpipe.data.dataset import CropDataset, TrainEpoch, collate, epoch_order
from fpnpipe.data.schema import CropSet, read_crops, write_crops
from fpnpipe.losses import PrototypeLoss
from fpnpipe.model.build import build_network

VGG16_GFLOPS = 15.5
"""One VGG-16 forward pass at 224 px (the figure the issue gives; 1-channel input changes it by < 1%)."""
FPN_OVERHEAD = 1.17
"""FPN-IAIA-BL's step over the bare VGG-16's at full width, 224 px, d = 256 (bench/train_step.py)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=1024, help="crops in the synthetic crops.h5 (default 1024)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per data path (default 8)")
    parser.add_argument("--model-batch", type=int, default=4, help="images per timed model step (default 4)")
    parser.add_argument("--model-steps", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one core's worth)")
    parser.add_argument("--gpu-tflops", type=float, default=400.0, help="assumed sustained GPU throughput")
    return parser.parse_args(argv)


def synthetic_crops(n: int, size: int) -> CropSet:
    rng = np.random.default_rng(0)
    images = rng.random((n, size, size), dtype=np.float32)
    fine = (rng.random((n, size, size)) < 0.1).astype(np.uint8)
    return CropSet(images=images, fine=fine, has_fine=np.ones(n, bool), roi=fine.copy(),
                   label=np.arange(n, dtype=np.int64) % len(CLASSES), split=np.array(["train"] * n, dtype=object),
                   patient_id=np.array([f"P{i}" for i in range(n)], dtype=object),
                   image_id=np.array([f"I{i}" for i in range(n)], dtype=object),
                   source_box=np.zeros((n, 4), np.float32))


def before_augment(image: torch.Tensor, mask: torch.Tensor, p: AugmentParams, gen: torch.Generator):
    """fpnpipe's per-sample augmentation before the batched one (its code as it was), for the baseline."""
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=gen))

    if p.hflip and torch.rand((), generator=gen) < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    if p.vflip and torch.rand((), generator=gen) < 0.5:
        image, mask = image.flip(-2), mask.flip(-2)
    if p.rot90:
        k = int(torch.randint(4, (), generator=gen))
        image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    size = image.shape[-1]
    angle = uniform(-p.affine_degrees, p.affine_degrees)
    shift = [round(uniform(-p.affine_translate, p.affine_translate) * size) for _ in range(2)]
    scale = math.exp(uniform(math.log(p.affine_scale[0]), math.log(p.affine_scale[1])))
    image = TF.affine(image, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                      interpolation=InterpolationMode.BILINEAR)
    mask = TF.affine(mask, angle=angle, translate=shift, scale=scale, shear=[0.0, 0.0],
                     interpolation=InterpolationMode.NEAREST)
    image = image.clamp(0, 1).pow(math.exp(uniform(math.log(p.gamma[0]), math.log(p.gamma[1]))))
    level, width = uniform(-p.window_jitter, p.window_jitter), 1.0 + uniform(-p.window_jitter, p.window_jitter)
    return ((image - 0.5 - level) / width + 0.5).clamp(0, 1), mask


class BeforeDataset(torch.utils.data.Dataset):
    """The sample-by-sample dataset of the earlier data path."""

    def __init__(self, data: CropDataset, p: AugmentParams) -> None:
        self.data, self.p = data, p

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]):
        i, draw = key
        gen = torch.Generator().manual_seed(draw)
        image, fine = before_augment(self.data.images[i], self.data.fine[i], self.p, gen)
        return image, fine, int(self.data.labels[i]), bool(self.data.has_fine[i]), i


def timed(label: str, images: int, seconds: float) -> float:
    rate = images / seconds
    shown = f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"
    print(f"{label}: {shown} images/s ({images} images in {seconds:.3g} s)", flush=True)
    return rate


def main(argv: list[str] | None = None) -> float:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s), {args.crops} crops of {args.size} px, "
          f"batch {args.batch}", flush=True)
    augment = AugmentParams()
    n_images = args.batch * args.batches

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crops.h5"
        write_crops(path, synthetic_crops(args.crops, args.size))
        start = time.perf_counter()
        crops = read_crops(path)
        read_rate = timed("HDF5 read (once per stage)", args.crops, time.perf_counter() - start)
    data = CropDataset(crops, augment, seed=0)

    order = epoch_order(data.labels, 0, 0, True)
    keys = [(int(i), k) for k, i in enumerate(order[:n_images])]
    loader = DataLoader(BeforeDataset(data, augment), batch_size=args.batch, sampler=keys, collate_fn=collate)
    start = time.perf_counter()
    for b in loader:
        b.to(device)
    sync()
    before = timed("before: per-sample torchvision augmentation, DataLoader, collate", n_images,
                   time.perf_counter() - start)

    epoch = TrainEpoch(data, args.batch, seed=0, epoch=0, balance=True, device=device)
    batches = iter(epoch)
    next(batches)  # warm-up (and, on CUDA, the copy of the crops to the GPU)
    sync()
    start = time.perf_counter()
    for _ in range(args.batches):
        next(batches)
    sync()
    now = timed(f"now: batched augmentation on {device}", n_images, time.perf_counter() - start)

    # Host work per batch when the augmentation runs on a GPU: the epoch's order (once per epoch, counted in
    # full here), each draw's random values and 2x3 matrix, the index tensor; plus, when the crops do not fit
    # on the GPU, the row gather from host memory.
    start = time.perf_counter()
    order = epoch_order(data.labels, 0, 1, True)
    for k in range(args.batches):
        positions = np.arange(k * args.batch, (k + 1) * args.batch) % len(order)
        sampling_matrices(augment, sample_uniforms(0, 1, positions))
        torch.from_numpy(order[positions])
    host = timed("now, host side with the crops on the GPU (order, random values, matrices)", n_images,
                 time.perf_counter() - start)
    start = time.perf_counter()
    for k in range(args.batches):
        positions = np.arange(k * args.batch, (k + 1) * args.batch) % len(order)
        sampling_matrices(augment, sample_uniforms(0, 1, positions))
        rows = torch.from_numpy(order[positions])
        data.images[rows], data.fine[rows]
    host_gather = timed("now, host side with the crops in host memory (+ row gather)", n_images,
                        time.perf_counter() - start)

    per_step = VGG16_GFLOPS * 3 * FPN_OVERHEAD
    gpu_rate = args.gpu_tflops * 1e3 / per_step
    print(f"GPU estimate: {per_step:.1f} GFLOPs per training image at an assumed {args.gpu_tflops:.0f} TFLOP/s "
          f"sustained: {gpu_rate:,.0f} images/s", flush=True)

    model = build_network(ModelParams(width=1.0, fpn_channels=256), PrototypeParams()).to(device)
    loss_fn = PrototypeLoss.for_model(LossParams(), model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    step_batch = data.gather(np.arange(args.model_batch), device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                      enabled=False)
    times = []
    for _ in range(args.model_steps + 1):
        sync()
        start = time.perf_counter()
        optimizer.zero_grad()
        with autocast:
            out = model(step_batch.images)
        loss_fn(out, step_batch.labels, step_batch.fine, step_batch.has_fine).total.backward()
        optimizer.step()
        sync()
        times.append(time.perf_counter() - start)
    model_rate = timed(f"model training step on {device} (fpn_iaiabl, full width, d 256, batch {args.model_batch}, "
                       "fastest step)", args.model_batch, min(times[1:]))
    print(f"data path now / model step on {device}: {now / model_rate:,.0f}x (before: {before / model_rate:,.0f}x)")
    print(f"data path / GPU estimate: before {before / gpu_rate:.2f}, now on {device} {now / gpu_rate:.2f}, "
          f"now host side {host / gpu_rate:.2f} (crops on the GPU) / {host_gather / gpu_rate:.2f} (crops on the "
          f"host), HDF5 read {read_rate / gpu_rate:.2f} (once per stage)")
    ratio = host / gpu_rate
    print(f"data path vs GPU training step {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
