"""Crops as tensors for training and evaluation: lesion crops (crops.h5) plus negative patches
(negatives.h5), by split, with optional augmentation; the batches of a training epoch, shared out among the
training processes; batches in order for validation and projection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fpnpipe.classes import CLASSES, NEGATIVE
from fpnpipe.config import AugmentParams
from fpnpipe.data.augment import augment_batch, sample_uniforms
from fpnpipe.data.schema import CropSet
from fpnpipe.distributed import Dist


@dataclass
class Batch:
    """images (B, 1, S, S) float; fine (B, S, S) uint8; labels (B,) long; has_fine (B,) bool;
    index (B,) long = row in the dataset's CropSet."""

    images: torch.Tensor
    fine: torch.Tensor
    labels: torch.Tensor
    has_fine: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device, channels_last: bool = False) -> Batch:
        nb = device.type == "cuda"
        images = self.images.to(device, non_blocking=nb)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return Batch(images, self.fine.to(device, non_blocking=nb), self.labels.to(device, non_blocking=nb),
                     self.has_fine.to(device, non_blocking=nb), self.index)

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.fine.pin_memory(), self.labels.pin_memory(),
                     self.has_fine.pin_memory(), self.index)


def collate(items: list[tuple[torch.Tensor, torch.Tensor, int, bool, int]]) -> Batch:
    images, fine, labels, has_fine, index = zip(*items, strict=True)
    return Batch(
        torch.stack(images), torch.stack(fine)[:, 0], torch.tensor(labels, dtype=torch.long),
        torch.tensor(has_fine, dtype=torch.bool), torch.tensor(index, dtype=torch.long),
    )


class CropDataset(Dataset):
    """A CropSet as tensors in memory, for training and evaluation.

    As a torch Dataset: (image (1, S, S) float32, fine (1, S, S) uint8, label, has_fine, index) samples; a
    key is a dataset row i, or a pair (i, draw) from EpochSampler. With `augment`, a sample is augmented
    with the random values of (seed, epoch, draw) (draw = i for a plain key), so a row drawn twice in one
    epoch gets two different augmentations, and a draw's augmentation does not depend on the batch or the
    process that loads it.

    The training path does not go through samples: `gather` takes a batch of rows straight from the
    tensors (held on the GPU when they fit, see `storage`) and augments it there in one go.
    """

    DEVICE_SHARE = 0.25
    """At most this share of a GPU's free memory holds a copy of the crops; larger sets stay on the host."""

    def __init__(self, crops: CropSet, augment: AugmentParams | None = None, seed: int = 0) -> None:
        self.crops = crops
        self.images = torch.from_numpy(np.ascontiguousarray(crops.images, np.float32))[:, None]
        self.fine = torch.from_numpy(np.ascontiguousarray(crops.fine, np.uint8))[:, None]
        self.labels = crops.label.astype(np.int64)
        self.has_fine = crops.has_fine.astype(bool)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._stored: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, bool, int]:
        i, draw = key if isinstance(key, tuple) else (key, key)
        image, fine = self.images[i], self.fine[i]
        if self.augment is not None:
            u = sample_uniforms(self.seed, self.epoch, np.array([draw]))
            aug_image, aug_fine = augment_batch(image[None], fine[None], self.augment, u)
            image, fine = aug_image[0], aug_fine[0]
        return image, fine, int(self.labels[i]), bool(self.has_fine[i]), i

    def storage(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, fine) to gather batches from: a copy on `device` if it is a GPU with room for it (kept
        for the dataset's lifetime), else the host tensors."""
        if device.type != "cuda":
            return self.images, self.fine
        if device not in self._stored:
            need = self.images.nbytes + self.fine.nbytes
            free, _ = torch.cuda.mem_get_info(device)
            if need > self.DEVICE_SHARE * free:
                return self.images, self.fine
            self._stored[device] = (self.images.to(device), self.fine.to(device))
        return self._stored[device]

    def gather(
        self, rows: np.ndarray, device: torch.device, channels_last: bool = False, draws: np.ndarray | None = None
    ) -> Batch:
        """The batch of dataset `rows` (B,) on `device`; augmented (on the device) when the dataset has
        `augment` and `draws` (B,) gives each sample's position in the epoch."""
        images, fine = self.storage(device)
        index = torch.from_numpy(np.asarray(rows, np.int64))
        picked_images, picked_fine = images[index.to(images.device)], fine[index.to(images.device)]
        if picked_images.device != device:
            pin = device.type == "cuda"
            picked_images = (picked_images.pin_memory() if pin else picked_images).to(device, non_blocking=pin)
            picked_fine = (picked_fine.pin_memory() if pin else picked_fine).to(device, non_blocking=pin)
        if self.augment is not None and draws is not None and len(index):
            u = sample_uniforms(self.seed, self.epoch, np.asarray(draws))
            picked_images, picked_fine = augment_batch(picked_images, picked_fine, self.augment, u)
        if channels_last:
            picked_images = picked_images.contiguous(memory_format=torch.channels_last)
        labels = torch.from_numpy(self.labels[index.numpy()]).to(device)
        has_fine = torch.from_numpy(self.has_fine[index.numpy()]).to(device)
        return Batch(picked_images, picked_fine[:, 0], labels, has_fine, index)


@dataclass(frozen=True)
class Shard:
    """This process's part of one global batch: its crops (size) and the batch's (global_size), the
    annotated crops (has_fine) among each, and the number of processes sharing the batch."""

    size: int
    global_size: int
    annotated: int
    global_annotated: int
    world: int = 1


class TrainEpoch:
    """One training epoch's batches for one process, as (Batch on the device, Shard) pairs.

    The epoch draws the rows of `epoch_order(seed, epoch)`; consecutive runs of `batch_size` draws are the
    global batches, whatever the number of processes; each of the `dist.world` processes takes its
    contiguous share of every global batch (Dist.shard), so every process walks the same global batches
    in the same order and a draw's augmentation does not depend on which process makes it. A share may be
    empty (a last batch smaller than the number of processes)."""

    def __init__(self, dataset: CropDataset, batch_size: int, seed: int, epoch: int, balance: bool,
                 device: torch.device, channels_last: bool = False, dist: Dist | None = None) -> None:
        self.dataset, self.batch_size, self.device, self.channels_last = dataset, batch_size, device, channels_last
        self.dist = dist or Dist()
        self.epoch = epoch
        self.order = epoch_order(dataset.labels, seed, epoch, balance)

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Batch, Shard]]:
        self.dataset.set_epoch(self.epoch)
        has_fine = self.dataset.has_fine
        for start in range(0, len(self.order), self.batch_size):
            positions = np.arange(start, min(len(self.order), start + self.batch_size))
            share = self.dist.shard(len(positions))
            mine = positions[share.start : share.stop]
            rows = self.order[mine]
            shard = Shard(len(mine), len(positions), int(has_fine[rows].sum()),
                          int(has_fine[self.order[positions]].sum()), self.dist.world)
            yield self.dataset.gather(rows, self.device, self.channels_last, draws=mine), shard


def shared_rows(n: int, batch_size: int, dist: Dist) -> np.ndarray:
    """This process's rows of n, for a pass in batches of `batch_size` (validation, projection): whole
    batches, contiguous, so every batch holds the same rows whatever the number of processes and each
    crop's result is computed the same way (kernels may round differently for other batch compositions)."""
    share = dist.shard(-(-n // batch_size))
    return np.arange(share.start * batch_size, min(n, share.stop * batch_size))


def batches_in_order(
    dataset: CropDataset, rows: Sequence[int] | np.ndarray, batch_size: int, device: torch.device,
    channels_last: bool = False,
) -> Iterator[Batch]:
    """Unaugmented batches of `rows` in their order, on `device` (validation, projection)."""
    rows = np.asarray(rows, np.int64)
    for start in range(0, len(rows), batch_size):
        yield dataset.gather(rows[start : start + batch_size], device, channels_last)


def epoch_order(labels: np.ndarray, seed: int, epoch: int, balance: bool) -> np.ndarray:
    """(N,) dataset rows in the order one training epoch draws them, fixed by (seed, epoch).

    balance=False: a permutation of the rows. balance=True: N draws with replacement, each class equally
    likely (a row's weight is 1 / its class's count), so a negative class that outnumbers the lesions
    (or a rare margin class) does not dominate the cross entropy and the arg-max stays meaningful.
    """
    labels = np.asarray(labels)
    gen = torch.Generator().manual_seed(seed * 7919 + epoch)
    if not balance or labels.size == 0:
        return torch.randperm(labels.size, generator=gen).numpy()
    counts = np.bincount(labels)
    weights = torch.from_numpy(1.0 / counts[labels])
    return torch.multinomial(weights, labels.size, replacement=True, generator=gen).numpy()


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (row, draw) pairs of `epoch_order`: draw = the position in the epoch (seeds augmentation)."""

    def __init__(self, labels: np.ndarray, seed: int, epoch: int, balance: bool) -> None:
        self.order = epoch_order(labels, seed, epoch, balance)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter((int(i), k) for k, i in enumerate(self.order.tolist()))


def annotated_lesion_rows(crops: CropSet) -> np.ndarray:
    """(n,) rows, in order, of the margin-class crops with a fine annotation: the crops every activation metric
    is measured on (prototype maps and saliency maps alike) and the Figure-4 cases are drawn from."""
    margin = crops.label != CLASSES.index(NEGATIVE)
    return np.nonzero(crops.has_fine & margin)[0]


def split_crops(lesions: CropSet, negatives: CropSet, split: str) -> CropSet:
    """Lesion crops and negative patches of one split, lesion crops first."""
    return CropSet.concat([lesions.in_split(split), negatives.in_split(split)], lesions.crop_size)


def make_loader(
    dataset: CropDataset, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
    num_workers: int = 0, pin_memory: bool = False, balance: bool = False,
) -> DataLoader:
    """A DataLoader over `dataset`. shuffle=True: the order of EpochSampler for (seed, epoch), class-balanced
    draws with replacement if `balance`; shuffle=False: the rows in order (evaluation, projection)."""
    dataset.set_epoch(epoch)
    sampler = EpochSampler(dataset.labels, seed, epoch, balance) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=False)
