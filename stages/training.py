"""What the training stages share: the crops of a split, a trained checkpoint on its device, DVCLive curves
written into a folder published only when the stage succeeds, the resume key, and running a stage's
training on `train.processes` ranks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fpnpipe.config import Params
from stages.common import fail

if TYPE_CHECKING:
    from fpnpipe.data.schema import CropSet
    from fpnpipe.distributed import Dist
    from fpnpipe.model.build import Model
    from fpnpipe.runtime import Runtime
    from fpnpipe.train.resume import Resume

R = TypeVar("R")


@contextmanager
def published(directory: Path) -> Iterator[Path | None]:
    """A temporary folder beside `directory` that replaces it when the block succeeds (fpnpipe.atomic): a
    stage killed or failing leaves no half-written DVCLive output under its final name. None on the
    torchrun ranks other than 0, which write nothing."""
    from fpnpipe.atomic import atomic_dir
    from fpnpipe.ranks import is_main_process

    if not is_main_process():
        yield None
        return
    with atomic_dir(directory) as tmp:
        yield tmp


@contextmanager
def live_epochs(directory: Path | None) -> Iterator[Callable[[dict[str, float]], None]]:
    """A DVCLive run in `directory` (its metrics.json and plots are declared in dvc.yaml by hand, so
    DVCLive writes no dvc.yaml of its own); yields a callback logging one epoch's metrics as one step
    (NaN and infinite values left out). directory None: the callback does nothing (ranks other than 0)."""
    if directory is None:
        yield lambda metrics: None
        return
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


def load_trained(stage: str, path: Path, params: Params, dist: Dist | None = None) -> tuple[Runtime, Model, dict]:
    """Seed and pick the device, then load the checkpoint at `path` onto it; fails naming the file."""
    from fpnpipe.model.checkpoint import CheckpointError, load_checkpoint
    from fpnpipe.runtime import setup_runtime

    runtime = setup_runtime(params.train, params.seed.train, dist)
    try:
        model, extra = load_checkpoint(path)
    except CheckpointError as exc:
        fail(f"{stage}: {exc}")
    return runtime, runtime.prepare(model), extra


def stage_params(params: Params, keys: tuple[str, ...]) -> dict[str, Any]:
    """{dotted key: value} of the params a stage reads (the keys dvc.yaml lists for it)."""
    data = params.model_dump(mode="json")
    out = {}
    for key in keys:
        value: Any = data
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


def resume_file(stage: str, params: Params, keys: tuple[str, ...], inputs: tuple[Path, ...],
                dist: Dist | None = None) -> Resume:
    """The stage's resume file (.fpnpipe/resume/<stage>.pt), keyed by the params it reads, its input files
    and the code of the fpnpipe and stages packages (any change starts the stage afresh)."""
    import fpnpipe
    import stages
    from fpnpipe.train.resume import Resume, state_key
    from stages.paths import RESUME_DIR

    code = [p for pkg in (fpnpipe, stages) for p in sorted(Path(str(pkg.__file__)).parent.rglob("*.py"))]
    return Resume(RESUME_DIR / f"{stage}.pt", state_key(stage, stage_params(params, keys), [*inputs, *code]), dist)


class SetupError(RuntimeError):
    """A rank could not set up its model (weights file, checkpoint): the message says why."""


def run_ranks(stage: str, fn: Callable[[Dist], R], params: Params) -> R | None:
    """fn(dist) on train.processes ranks (fpnpipe.distributed.launch); rank 0's result, None on torchrun's
    other ranks. Fails with one clear line when the device is absent, a rank cannot set up (SetupError) or
    a rank fails (every rank is then stopped, and nothing is written)."""
    from fpnpipe.distributed import LaunchError, RankFailure, launch
    from fpnpipe.runtime import pick_device

    try:
        cuda = pick_device(params.train.device).type == "cuda"
    except ValueError as exc:
        fail(f"{stage}: {exc}")
    try:
        return launch(fn, params.train.processes, cuda)
    except (LaunchError, RankFailure, SetupError) as exc:
        fail(f"{stage}: {exc}")


def cpu_state(model: Model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
