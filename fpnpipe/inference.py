"""Running a trained model over a loader of crops: class probabilities, for validation (training),
evaluation and explanations alike."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from fpnpipe.data.dataset import Batch
from fpnpipe.model.base import ClassifierNet
from fpnpipe.runtime import Runtime


@torch.no_grad()
def predict(model: ClassifierNet, loader: DataLoader, runtime: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, C) float64 and labels (N,) over an unshuffled loader."""
    model.eval()
    probs, labels = [], []
    for batch in loader:
        b: Batch = batch.to(runtime.device, runtime.channels_last)
        with runtime.autocast():
            logits = model(b.images).logits
        probs.append(logits.float().softmax(1).cpu())
        labels.append(b.labels.cpu())
    return torch.cat(probs).double().numpy(), torch.cat(labels).numpy()
