"""What the stages after the data stages share: the crops of a split, a trained checkpoint on its device,
and DVCLive curves."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fpnpipe.config import Params
from stages.common import fail

if TYPE_CHECKING:
    from fpnpipe.data.schema import CropSet
    from fpnpipe.model.build import Model
    from fpnpipe.runtime import Runtime


@contextmanager
def live_epochs(directory: Path) -> Iterator[Callable[[dict[str, float]], None]]:
    """A DVCLive run in `directory` (its metrics.json and plots are declared in dvc.yaml by hand, so
    DVCLive writes no dvc.yaml of its own); yields a callback logging one epoch's metrics as one step."""
    from dvclive import Live

    with Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log_epoch(metrics: dict[str, float]) -> None:
            for name, value in metrics.items():
                if math.isfinite(value):
                    live.log_metric(name, value)
            live.next_step()

        yield log_epoch


def load_sets(params: Params, splits: tuple[str, ...]) -> dict[str, CropSet]:
    """Lesion crops + negative patches of each named split; fails with a clear message if the crop files
    are missing or do not match crop.size."""
    from fpnpipe.data.dataset import split_crops
    from fpnpipe.data.schema import SchemaError, read_crops
    from stages.paths import CROPS, NEGATIVES

    try:
        lesions, negatives = read_crops(CROPS, params.crop.size), read_crops(NEGATIVES, params.crop.size)
    except SchemaError as exc:
        fail(str(exc))
    sets = {s: split_crops(lesions, negatives, s) for s in splits}
    for split, crops in sets.items():
        if len(crops) == 0:
            fail(f"the {split} split is empty; check split.* params and reports/preprocess.json")
    return sets


def load_trained(stage: str, path: Path, params: Params) -> tuple[Runtime, Model, dict]:
    """Seed and pick the device, then load the checkpoint at `path` onto it; fails naming the file."""
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint
    from fpnpipe.runtime import setup_runtime

    runtime = setup_runtime(params.train, params.seed.train)
    try:
        model, extra = load_checkpoint(path)
    except CheckpointError as exc:
        fail(f"{stage}: {exc}")
    return runtime, runtime.prepare(model), extra
