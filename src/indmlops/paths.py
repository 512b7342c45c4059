"""Where the project's own files are: the manifests, fixtures and config a suite run reads.

They live in the project tree (a clone), not in the installed package. The tree is found in this order:
`INDMLOPS_PROJECT_DIR`; the tree this package was installed from (an editable install, the usual case); the
working directory or one of its parents. A tree is recognised by `fixtures/slo.yaml`, `manifests/` and `config/`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

MARKERS = ("fixtures/slo.yaml", "manifests", "config")


def is_project_tree(path: Path) -> bool:
    return all((path / marker).exists() for marker in MARKERS)


def find_project_root(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("INDMLOPS_PROJECT_DIR"):
        return Path(env["INDMLOPS_PROJECT_DIR"]).resolve()
    here = Path(__file__).resolve()
    start = (cwd or Path.cwd()).resolve()
    candidates = [*here.parents, start, *start.parents]
    for candidate in candidates:
        if is_project_tree(candidate):
            return candidate
    # Installed without a project tree (the images): the services do not read these files; a harness command that
    # does names the missing file in its own error.
    return (cwd or Path.cwd()).resolve()


REPO_ROOT = find_project_root()
CONFIG_DIR = REPO_ROOT / "config"
FIXTURES_DIR = REPO_ROOT / "fixtures"
MANIFESTS_DIR = REPO_ROOT / "manifests"
