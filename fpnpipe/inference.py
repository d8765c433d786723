"""Running a trained model over a loader of crops: class probabilities, for validation (training),
evaluation and explanations alike."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from fpnpipe.data.dataset import Batch
from fpnpipe.model.base import ClassifierNet
from fpnpipe.runtime import Runtime


@torch.no_grad()
def predict(
    model: ClassifierNet, loader: Iterable[Batch], runtime: Runtime, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, C) float64 and labels (N,) over an unshuffled loader (any iterable of Batch:
    a DataLoader or batches_in_order); (0, num_classes) and (0,) when it yields nothing."""
    model.eval()
    probs, labels = [], []
    for batch in loader:
        b: Batch = batch.to(runtime.device, runtime.channels_last)
        with runtime.autocast():
            logits = model(b.images).logits
        probs.append(logits.float().softmax(1).cpu())
        labels.append(b.labels.cpu())
    if not probs:
        return np.zeros((0, num_classes or model.num_classes)), np.zeros(0, np.int64)
    return torch.cat(probs).double().numpy(), torch.cat(labels).numpy()
