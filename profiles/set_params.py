"""Print a profile (profiles/*.yaml: one dotted params key and its value per line) as `dvc exp run`
arguments, one `-S key=value` pair per key, values in the flow YAML that -S parses:

    dvc exp run $(python profiles/set_params.py profiles/paper.yaml)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ruamel.yaml import YAML


def read_profile(path: str | Path) -> dict[str, object]:
    """{dotted key: value} of a profile file; ValueError naming the file for anything else."""
    data = YAML(typ="safe", pure=True).load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"{path}: expected a mapping of dotted params keys to values")
    return data


def set_params(profile: dict[str, object]) -> list[str]:
    """["-S", "key=value", ...]; values as compact JSON (valid flow YAML, no spaces to split on)."""
    args: list[str] = []
    for key, value in profile.items():
        args += ["-S", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    return args


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python profiles/set_params.py PROFILE.yaml")
    print(" ".join(set_params(read_profile(sys.argv[1]))))
