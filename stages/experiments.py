"""What the experiment commands (show, seeds, frontier) share: the JSON of `dvc exp show --json`, run here
or read from a saved copy, with a clear error when it cannot be had."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from stages.common import fail

JSON_FILE_OPTION = typer.Option(
    None, "--json-file", dir_okay=False, allow_dash=True,
    help="A saved `dvc exp show --json` output to read instead of running DVC ('-': stdin).")
ALL_COMMITS_OPTION = typer.Option(False, "--all-commits", "-A", help="Every commit's experiments (dvc exp show -A).")


def exp_show(command: str, json_file: Path | None, all_commits: bool) -> tuple[Any, str]:
    """(the parsed JSON, where it came from); fails naming the command and the source otherwise."""
    if json_file is None:
        argv = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["-A"] if all_commits else [])]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            fail(f"{command}: `dvc exp show --json` failed: {done.stderr.strip() or done.stdout.strip()}")
        text, source = done.stdout, "`dvc exp show --json`"
    elif str(json_file) == "-":
        text, source = sys.stdin.read(), "standard input"
    else:
        try:
            text, source = json_file.read_text(encoding="utf-8"), str(json_file)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{command}: cannot read {json_file}: {exc}")
    try:
        return json.loads(text), source
    except json.JSONDecodeError as exc:
        fail(f"{command}: {source} is not JSON ({exc})")
