"""Read intent and thresholds from fixtures/ (data, not code)."""

from __future__ import annotations

from functools import cache
import yaml

from indmlops.local.layout import REPO_ROOT

FIXTURES_DIR = REPO_ROOT / "fixtures"


@cache
def load(name: str) -> dict:
    """fixtures/<name>.yaml as a dict; a missing or malformed file names itself in the error."""
    path = FIXTURES_DIR / f"{name}.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"intent file {path} is missing") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"intent file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"intent file {path}: expected a mapping at the top, got {type(doc).__name__}")
    return doc
