"""Validate objects against the Kubernetes JSON schemas that kubernetes-validate ships (offline, strict)."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv
from referencing import Registry, Resource


class NoSchema(Exception):
    """The object's kind/apiVersion has no schema in this Kubernetes version (a custom resource, or removed)."""


def shipped_versions() -> list[str]:
    """Kubernetes minor versions with schemas in the installed kubernetes-validate, oldest first ("1.25", ...)."""
    minors = {kv.major_minor(v) for v in kv.all_versions()}
    return sorted(minors, key=lambda v: tuple(int(x) for x in v.split(".")))


def newest_versions(count: int) -> list[str]:
    return shipped_versions()[-count:]


def _schema_dir(version: str) -> str:
    full = [v for v in kv.all_versions() if kv.major_minor(v) == version]
    if not full:
        raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {version} "
                         f"(it ships {', '.join(shipped_versions())})")
    return f"kubernetes-json-schema/v{full[-1]}-local-strict"


@cache
def _registry(version: str) -> Registry:
    definitions = kv.schema_contents(f"{_schema_dir(version)}/_definitions.json", version)
    return Resource.from_contents(definitions) @ Registry()


@cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.protocols.Validator:
    # kubernetes-validate's file naming: apps/v1 -> apps-v1, networking.k8s.io/v1 -> networking-v1, v1 -> v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv.schema_contents(f"{_schema_dir(version)}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        raise NoSchema(f"no schema for {kind} {api_version} in Kubernetes {version}") from None
    registry = Resource.from_contents(schema) @ _registry(version)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate(body: dict[str, Any], version: str) -> list[str]:
    """Schema violations of one object for one Kubernetes minor version, strict (unknown fields are errors),
    one line each with the field path; [] when valid. NoSchema when the kind is unknown to that version."""
    validator = _validator(version, str(body.get("kind", "")), str(body.get("apiVersion", "")))
    out = []
    for err in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{path}: {err.message[:300]}")
    return out


def is_builtin(api_version: str) -> bool:
    """Core and *.k8s.io groups have schemas; other groups are custom resources."""
    group = api_version.rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")
