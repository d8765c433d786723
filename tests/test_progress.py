"""Progress reporting: the stage's bar counts the work of a resumed stage as done, library calls report
through progress(done, total) callbacks up to their total."""

from __future__ import annotations

import numpy as np

from fpnpipe.config import FinetuneParams
from fpnpipe.metrics.bootstrap import bootstrap_ci
from fpnpipe.metrics.classification import AurocTask
from fpnpipe.train.progress import StageProgress
from fpnpipe.train.schedule import _finetune_work, projection_epochs


def test_bootstrap_reports_every_resample() -> None:
    rng = np.random.default_rng(0)
    n = 40
    task = AurocTask(scores=rng.random(n), positive=np.arange(n) % 2 == 0, included=np.ones(n, bool))
    calls: list[tuple[int, int]] = []
    ci = bootstrap_ci({"a": task}, np.array([f"p{i // 2}" for i in range(n)]), n_boot=700, seed=1,
                      progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (700, 700) and all(t == 700 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    without = bootstrap_ci({"a": task}, np.array([f"p{i // 2}" for i in range(n)]), n_boot=700, seed=1)
    assert ci.intervals == without.intervals  # reporting changes nothing


def test_the_stage_bar_starts_at_the_work_already_done() -> None:
    params = FinetuneParams(epochs=5, project_every=2, last_layer_epochs=1)
    assert projection_epochs(params) == [1, 3, 4]
    total = _finetune_work(params, 100, 100, 20, range(5), True)
    # 5 joint epochs (3 x 100 + 20) + 3 projections (push 100, last layer 100, validation 20)
    assert total == 5 * 320 + 3 * 220
    done = _finetune_work(params, 100, 100, 20, range(2), True)
    assert done == 2 * 320 + 220
    with StageProgress("finetune", total, done) as stage:
        task = stage._bar.tasks[0]  # type: ignore[union-attr]
        assert task.completed == done and task.total == total
        with stage.phase("epoch", 4, "loss {loss:.2f}", loss=1.0) as bar:
            for _ in range(4):
                bar.advance(work=80)
        assert stage._bar.tasks[0].completed == done + 320 and len(stage._bar.tasks) == 1  # type: ignore[union-attr]
