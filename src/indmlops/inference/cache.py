"""The last good model on local disk, so a restarted edge serves at once: written atomically, read without MLflow."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

# /2: an ONNX payload is the artifact's file as stored (it was re-serialized by `onnx`, whose bytes need not equal
# the registry's): a /1 cache is ignored, and the model fetched again.
FORMAT = "indmlops-model-cache/2"
FLAVORS = ("onnx", "sklearn")


class CacheUnusable(Exception):
    """The cache cannot be served from; the message says why (the service prints it and asks the registry)."""


@dataclass(frozen=True)
class CachedModel:
    name: str
    alias: str
    version: str
    flavor: str  # "onnx": payload is the ONNX model's bytes; "sklearn": the loaded estimator, pickled
    run_id: str | None
    payload: bytes
    classes: tuple[str, ...] = ()  # onnx: the classifier's labels in probability order (parsing them needs `onnx`)


def path_for(directory: Path, name: str, alias: str) -> Path:
    return Path(directory) / f"{name}@{alias}.model"


def write(directory: Path, entry: CachedModel) -> Path:
    """One file: a JSON header line, then the payload. Written to a temporary file in the same directory, synced,
    then renamed over the old one: a kill at any moment leaves the old file or the new one, never half of one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = path_for(directory, entry.name, entry.alias)
    header = {"format": FORMAT, "name": entry.name, "alias": entry.alias, "version": entry.version,
              "flavor": entry.flavor, "run_id": entry.run_id, "classes": list(entry.classes),
              "size": len(entry.payload), "sha256": hashlib.sha256(entry.payload).hexdigest()}
    tmp = directory / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
            f.write(entry.payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut only once the directory is synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return final


def read(directory: Path, name: str, alias: str) -> CachedModel:
    """The cached model for name@alias; raises CacheUnusable naming the file and what is wrong with it."""
    path = path_for(directory, name, alias)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CacheUnusable(f"no cached model at {path}") from None
    except OSError as exc:
        raise CacheUnusable(f"cannot read {path}: {exc.strerror or exc}") from None
    head, sep, payload = data.partition(b"\n")
    try:
        if not sep:
            raise ValueError("no header line")
        h = json.loads(head)
        if not isinstance(h, dict) or h.get("format") != FORMAT:
            raise ValueError(f"format {h.get('format') if isinstance(h, dict) else h!r}, expected {FORMAT!r}")
        if (h.get("name"), h.get("alias")) != (name, alias):
            raise ValueError(f"holds {h.get('name')}@{h.get('alias')}, not {name}@{alias}")
        if h.get("flavor") not in FLAVORS:
            raise ValueError(f"flavor {h.get('flavor')!r}, expected one of {', '.join(FLAVORS)}")
        if len(payload) != h.get("size"):
            raise ValueError(f"payload is {len(payload)} bytes, the header says {h.get('size')}")
        if hashlib.sha256(payload).hexdigest() != h.get("sha256"):
            raise ValueError("payload does not match its sha256")
        run_id = h.get("run_id")
        return CachedModel(name, alias, str(h["version"]), h["flavor"], None if run_id is None else str(run_id),
                           payload, tuple(str(c) for c in h.get("classes") or ()))
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CacheUnusable(f"{path} is unusable: {exc}") from None
