"""Read intent and thresholds from fixtures/ (data, not code)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from indmlops.paths import REPO_ROOT

FIXTURES_DIR = REPO_ROOT / "fixtures"


def read_yaml(path: Path, *, missing: type[Exception] = FileNotFoundError,
              malformed: type[Exception] = ValueError) -> Any:
    """An intent file's YAML; a missing or malformed file names itself in the error (of the caller's types)."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise missing(f"intent file {path} is missing") from None
    except yaml.YAMLError as exc:
        raise malformed(f"intent file {path} is not valid YAML: {exc}") from exc


@cache
def load(name: str) -> dict:
    """fixtures/<name>.yaml as a dict; a missing or malformed file names itself in the error."""
    path = FIXTURES_DIR / f"{name}.yaml"
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ValueError(f"intent file {path}: expected a mapping at the top, got {type(doc).__name__}")
    return doc
