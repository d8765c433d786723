"""Params of the training stages: train (device), augment, warmup, project, finetune."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from fpnpipe.config.base import Section
from fpnpipe.config.data import FloatRange, check_range

LearningRate = Annotated[float, Field(gt=0)]
"""A learning rate: positive and finite (no float in params may be infinite or NaN)."""


class TrainParams(Section):
    """Where and how training runs; shared by every training stage."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    num_workers: int = Field(0, ge=0, le=64)
    balance_classes: bool = True
    """Each training epoch draws its crops with replacement so that every class is equally likely (a
    negative class that outnumbers the lesions would otherwise pull the arg-max to "negative"); false =
    every crop once per epoch, in a seeded random order."""
    bf16: bool = True
    channels_last: bool = True
    processes: int = Field(1, ge=1, le=64)
    """Training processes (PyTorch DistributedDataParallel; one per GPU on CUDA, gloo on the CPU) that
    warmup, project and finetune share their work among. The batch sizes stay global: each process takes
    its share of every batch, so the result is that of one process up to float rounding. Under torchrun,
    torchrun's process count is used instead."""


class AugmentParams(Section):
    """Training augmentation, applied to the image and its masks together."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    affine_degrees: float = Field(10.0, ge=0, le=180)
    affine_translate: float = Field(0.05, ge=0, le=0.5)
    affine_scale: FloatRange = (0.9, 1.1)
    fill: Literal["zero", "reflect"] = "zero"
    """What the rotation, shift and scaling bring in from outside the crop: `zero` (air: a turned, shifted or
    shrunk crop gets black corners or a black frame near its edge) or `reflect` (the crop mirrored at its
    edge, image and fine annotation alike, so no artificial edge appears)."""
    gamma: FloatRange = (0.8, 1.25)
    window_jitter: float = Field(0.05, ge=0, le=0.5)

    @field_validator("affine_scale", "gamma")
    @classmethod
    def _ordered(cls, v: FloatRange) -> FloatRange:
        if v[0] <= 0:
            raise ValueError(f"must be positive, got {list(v)}")
        return check_range(v)


class SchedulerParams(Section):
    name: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(5, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)


class OptimizerParams(Section):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class WarmupLr(Section):
    """Learning rate per parameter group trained in stage A (neck = the FPN, or the add-on layers of the
    single-scale baselines)."""

    neck: LearningRate = 3e-3
    prototypes: LearningRate = 3e-3
    last_layer: LearningRate = 1e-3


class WarmupParams(Section):
    """Stage A: backbone frozen."""

    epochs: int = Field(5, ge=0, le=10_000)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: WarmupLr = WarmupLr()
    optimizer: OptimizerParams = OptimizerParams()
    scheduler: SchedulerParams = SchedulerParams()
    train_last_layer: bool = False


class ProjectParams(Section):
    """Stage B: prototype projection."""

    batch_size: int = Field(64, ge=1, le=4096)
    distinct: Literal["image", "cell", "none"] = "image"
    """What prototypes of one class and FPN level may not share: a source crop ("image"), a grid cell of
    one ("cell"), or nothing ("none": each takes its own best patch, as the paper's push)."""


class FinetuneLr(Section):
    """Learning rate per parameter group in stage C's joint epochs."""

    backbone: LearningRate = 1e-3
    neck: LearningRate = 1e-3
    prototypes: LearningRate = 1e-3
    last_layer: LearningRate = 1e-3


class FinetuneParams(Section):
    """Stage C: all layers trainable, alternating with projection and last-layer phases."""

    epochs: int = Field(40, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: FinetuneLr = FinetuneLr()
    optimizer: OptimizerParams = OptimizerParams()
    scheduler: SchedulerParams = SchedulerParams()
    project_every: int = Field(10, ge=1)
    last_layer_epochs: int = Field(3, ge=0)
    last_layer_lr: LearningRate = 1e-3
