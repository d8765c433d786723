"""Crops as tensors for training and evaluation: lesion crops (crops.h5) plus negative patches
(negatives.h5), by split, with optional augmentation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fpnpipe.classes import CLASSES, NEGATIVE
from fpnpipe.config import AugmentParams
from fpnpipe.data.augment import augment_pair
from fpnpipe.data.schema import CropSet


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
    """A CropSet as (image (1, S, S) float32, fine (1, S, S) uint8, label, has_fine, index) samples.

    A key is a dataset row i, or a pair (i, draw) from EpochSampler. With `augment`, the sample is
    augmented with a generator seeded by (seed, epoch, draw) (draw = i for a plain key), so a row drawn
    twice in one epoch gets two different augmentations, and a draw's augmentation does not depend on the
    batch or the process that loads it.
    """

    def __init__(self, crops: CropSet, augment: AugmentParams | None = None, seed: int = 0) -> None:
        self.crops = crops
        self.images = torch.from_numpy(np.ascontiguousarray(crops.images, np.float32))[:, None]
        self.fine = torch.from_numpy(np.ascontiguousarray(crops.fine, np.uint8))[:, None]
        self.labels = crops.label.astype(np.int64)
        self.has_fine = crops.has_fine.astype(bool)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, bool, int]:
        i, draw = key if isinstance(key, tuple) else (key, key)
        image, fine = self.images[i], self.fine[i]
        if self.augment is not None:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + draw)
            image, fine = augment_pair(image, fine, self.augment, gen)
        return image, fine, int(self.labels[i]), bool(self.has_fine[i]), i


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
