"""Replayable hostile payloads: `NNN.<channel>.bin` (the raw bytes) + `NNN.json` (where it went, what it was, what
the edge did) under reports/robustness/, and the `reproduce.sh` that sends them again
(`python -m indmlops.checks.live.robustness replay DIR`)."""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

CHANNELS = ("mqtt", "http")
_NAME = re.compile(r"^(\d{3,})\.(mqtt|http)\.bin$")


@dataclass(frozen=True)
class Payload:
    """One hostile message: `where` is the MQTT topic or the HTTP path it was sent to; `framing` how an HTTP body was
    delimited when that was the hostile part ("chunked", or the Content-Length value sent)."""

    channel: str
    where: str
    data: bytes
    note: str = ""
    framing: str = ""

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r}: expected one of {', '.join(CHANNELS)}")

    def describe(self) -> str:
        return f"{self.channel} {len(self.data)} B on {shorten(self.where)} ({self.note})"


def shorten(text: str, limit: int = 80) -> str:
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else f"{shown[:limit]}…({len(text)} chars)"


def save(directory: Path, payload: Payload, *, failure: str = "") -> Path:
    """Write the payload as the next free NNN in `directory` and (re)write reproduce.sh; returns the .bin path."""
    directory.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    n = max(taken, default=0) + 1
    while True:  # two runs writing to one directory: take the next number atomically
        path = directory / f"{n:03d}.{payload.channel}.bin"
        try:
            with path.open("xb") as f:
                f.write(payload.data)
            break
        except FileExistsError:
            n += 1
    side = {"channel": payload.channel, "where": payload.where, "bytes": len(payload.data), "note": payload.note,
            "framing": payload.framing, "failure": failure}
    (directory / f"{n:03d}.json").write_text(json.dumps(side, indent=1, ensure_ascii=True) + "\n")
    write_reproduce(directory)
    return path


def load(directory: Path) -> list[tuple[Path, Payload]]:
    """Every saved payload in `directory`, in number order; a .bin without a readable sidecar is an error."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory of saved payloads")
    out = []
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.name)
        if not m:
            continue
        side_path = directory / f"{m.group(1)}.json"
        try:
            side = json.loads(side_path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: its sidecar {side_path.name} is missing or not JSON ({exc})") from None
        if side.get("channel") != m.group(2) or not isinstance(side.get("where"), str):
            raise ValueError(f"{side_path}: expected channel {m.group(2)!r} and a string 'where', got {side!r}")
        out.append((path, Payload(m.group(2), side["where"], path.read_bytes(), side.get("note", ""),
                                   side.get("framing", ""))))
    return out


def write_reproduce(directory: Path) -> Path:
    script = directory / "reproduce.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# Send every saved payload of this directory to the edge again, in order; after each, /healthz, /readyz and\n"
        "# a valid reading must get through. Run with the INDMLOPS_* environment (state dir, ports) "
        "of the failing run.\n"
        f'exec {shlex.quote(sys.executable)} -m indmlops.checks.live.robustness replay "$(dirname "$0")" "$@"\n')
    script.chmod(0o755)
    return script
