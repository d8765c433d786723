"""The Typer app: one command per pipeline stage (`python -m stages --help`, or `fpnpipe --help`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fpnpipe",
    help="FPN-IAIA-BL pipeline stages. Each command reads params.yaml, validates it, and writes its outputs "
    "atomically. dvc.yaml runs them in order; run one by hand with `python -m stages NAME`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Stage modules import their heavy dependencies inside the command, so `--help` stays fast.
    from stages import evaluate, explain, explain_image, finetune, negatives, preprocess, project, synth, warmup

    for name, module in (
        ("synth", synth),
        ("preprocess", preprocess),
        ("negatives", negatives),
        ("warmup", warmup),
        ("project", project),
        ("finetune", finetune),
        ("evaluate", evaluate),
        ("explain", explain),
        ("explain-image", explain_image),
    ):
        app.command(name, help=" ".join((module.__doc__ or "").split()))(module.main)


_register()
