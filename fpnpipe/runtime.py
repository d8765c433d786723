"""Device choice and the per-device speed settings: CUDA gets bf16 autocast, channels_last and pinned
memory; CPU runs deterministic float32; Apple MPS is used when present. Under several training processes
each rank takes its own GPU and wraps the model in DistributedDataParallel for training."""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fpnpipe.config import TrainParams
from fpnpipe.distributed import Dist

log = logging.getLogger(__name__)

M = TypeVar("M", bound=torch.nn.Module)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool
    channels_last: bool
    pin_memory: bool
    dist: Dist = Dist()

    def prepare(self, model: M) -> M:
        """The model (moved in place) on this device, in channels_last memory format where that is faster."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def data_parallel(self, model: nn.Module) -> nn.Module:
        """What a training phase calls forward on: the model itself in one process; across several, a
        DistributedDataParallel wrapper of it, which averages the gradients of the parameters that require
        them NOW over the ranks during backward. Wrap again when a phase trains other parameters."""
        if not self.dist.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def pick_device(name: str) -> torch.device:
    """`auto` -> cuda if available, else mps, else cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("train.device is 'mps' but Apple MPS is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (as every stage does when it starts)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup_runtime(params: TrainParams, seed: int, dist: Dist | None = None) -> Runtime:
    """Seed every generator and choose the device and its speed settings; a rank of several processes
    (`dist`) takes the GPU of its local rank."""
    dist = dist or Dist()
    seed_everything(seed)
    device = pick_device(params.device)
    cuda = device.type == "cuda"
    if cuda and dist.active:
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu":
        # Same params and seed -> same metrics on CPU.
        torch.use_deterministic_algorithms(True, warn_only=True)
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    runtime = Runtime(device=device, bf16=cuda and params.bf16, channels_last=cuda and params.channels_last,
                      pin_memory=cuda, dist=dist)
    if dist.active:
        log.info("%d training processes (%s)", dist.world, dist.backend)
    log.info("device %s (bf16 autocast: %s, channels_last: %s)", device, runtime.bf16, runtime.channels_last)
    return runtime
