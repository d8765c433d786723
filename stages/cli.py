"""The Typer app: one command per pipeline stage (`python -m stages --help`, or `fpnpipe --help`).

`python -m stages NAME` imports only stages/NAME.py (and what it imports), so a stage's code dependencies
in dvc.yaml are exactly its own import closure (tests/test_structure.py checks them).
"""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Iterable
from types import FrameType

import typer

STAGES: dict[str, str] = {
    "synth": "stages.synth",
    "preprocess": "stages.preprocess",
    "negatives": "stages.negatives",
    "warmup": "stages.warmup",
    "project": "stages.project",
    "finetune": "stages.finetune",
    "evaluate": "stages.evaluate",
    "explain": "stages.explain",
    "explain-image": "stages.explain_image",
    "show": "stages.show",
    "seeds": "stages.seeds",
    "frontier": "stages.frontier",
    "compare-train": "stages.compare_train",
    "compare-saliency": "stages.compare_saliency",
    "compare-report": "stages.compare_report",
}
"""Command name -> its module (imported by name, on demand). explain-image, show, seeds and frontier are not
pipeline stages: no dvc.yaml runs them; the compare-* commands are stages/compare/dvc.yaml's stages."""

HELP = ("FPN-IAIA-BL pipeline stages. Each command reads params.yaml, validates it, and writes its outputs "
        "atomically. dvc.yaml runs them in order; run one by hand with `python -m stages NAME`.")


def build_app(names: Iterable[str] | None = None) -> typer.Typer:
    """A Typer app with the commands `names` (default: all). Stage modules import their heavy dependencies
    inside the command, so building the app (and `--help`) stays fast."""
    app = typer.Typer(name="fpnpipe", help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)

    @app.callback()
    def _group() -> None:  # a group even with one command: the command is named on the command line
        pass

    for name in STAGES if names is None else names:
        module = importlib.import_module(STAGES[name])
        app.command(name, help=" ".join((module.__doc__ or "").split()))(module.main)
    return app


class Interrupted(BaseException):
    """Ctrl-C (SIGINT). Not a KeyboardInterrupt, which click would turn into "Aborted!" with status 1: it
    unwinds the stage (every `finally` and atomic write cleans up) and ends in one line and status 130."""


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def main(prog_name: str = "fpnpipe") -> None:
    """Run the command line: build only the named stage's command when one is named. Ctrl-C prints one
    line naming the stage and exits with status 130, without a traceback."""
    args = sys.argv[1:]
    names = [args[0]] if args and args[0] in STAGES else None
    signal.signal(signal.SIGINT, _interrupted)
    try:
        build_app(names)(args=args, prog_name=prog_name)
    except (Interrupted, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
        from fpnpipe.log import console

        console.print(f"{names[0] if names else prog_name}: interrupted (Ctrl-C)", highlight=False)
        raise SystemExit(130) from None
