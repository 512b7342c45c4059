#!/usr/bin/env python3
"""Print the pinned requirements of the project's core and the given extras, one per line, from pyproject.toml.

The images install their dependencies in a layer of their own, before the source is copied, so a source change does
not download them again; this keeps pyproject.toml the single source of their pins:

    python3 scripts/requirements.py serve > /tmp/req.txt && pip install -r /tmp/req.txt

An extra that names the project itself (`indmlops[serve,train]`) is expanded. Python >= 3.11 (tomllib), nothing
else.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SELF = re.compile(r"^indmlops\[(?P<extras>[^\]]+)\]$")


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"requirements.py: no extra {extra!r} in pyproject.toml (have: {', '.join(optional)})")
        seen.add(extra)
        for req in optional[extra]:
            m = SELF.match(req.replace(" ", ""))
            if m:
                todo.extend(m["extras"].split(","))
            elif req not in out:
                out.append(req)
    return out


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent.parent / "pyproject.toml"
    path = Path(argv[argv.index("--pyproject") + 1]) if "--pyproject" in argv else here
    extras = [a for i, a in enumerate(argv) if a != "--pyproject" and (i == 0 or argv[i - 1] != "--pyproject")]
    with path.open("rb") as f:
        print("\n".join(requirements(tomllib.load(f), extras)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
