"""Durability checks: known content survives a kill of the component that stores it, byte for byte."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from indmlops.checks.live.content import WRITERS, Content
from indmlops.errors import NotSupportedByTarget
from indmlops.targets.base import Target


@dataclass
class Outcome:
    component: str
    kill_identity: str
    ready_identity: str
    recovery_s: float  # kill sent -> the component answers its protocol again
    written: dict[str, dict] = field(default_factory=dict)  # kind -> {"items", "bytes", "where"}
    verified: dict[str, int] = field(default_factory=dict)
    volume: str = ""
    failures: list[str] = field(default_factory=list)
    cleanup_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{k}: {self.verified.get(k, 0)}/{w['items']} ({w['bytes'] / 1024:.0f} kB)"
                 for k, w in self.written.items()]
        return (f"{self.component}: pid {self.kill_identity} -> {self.ready_identity}, recovered in "
                f"{self.recovery_s:.2f} s; verified " + "; ".join(parts) + (f"; volume {self.volume}"
                                                                          if self.volume else ""))


class ContentLost(AssertionError):
    """Content did not survive; `outcome` still says what was written, verified and how long recovery took."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def _volume(target: Target, component: str) -> str | None:
    try:
        return target.volume_identity(component)
    except NotSupportedByTarget:
        return None


def content_survives_kill(target: Target, component: str, *, kinds: list[str], timeout: float,
                          settle_s: float = 0.0, after_kill: Callable[[], None] | None = None) -> Outcome:
    """Write each kind of known content, kill `component` through the target, wait until it answers again,
    then verify every item. All kinds are verified before failing, so one report names every loss.

    `settle_s` is the component's documented persistence delay (fixtures/durability.yaml); `after_kill` runs
    between the kill and the wait (the sensitivity tests swap the data directory there)."""
    unknown = [k for k in kinds if k not in WRITERS]
    assert not unknown, f"unknown content kinds {unknown}: expected some of {sorted(WRITERS)}"
    target.wait_ready(component, timeout)
    tag = f"{component}-{uuid.uuid4().hex[:8]}"
    contents: list[Content] = [WRITERS[k](target, tag) for k in kinds]
    if settle_s:
        time.sleep(settle_s)
    volume_before = _volume(target, component)
    kill = target.kill(component)
    deadline = time.monotonic() + timeout
    # The old process must be gone before "ready" means anything (a probe could answer from the dying one).
    while target.identity(component) == kill.identity and time.monotonic() < deadline:
        time.sleep(0.05)
    if after_kill:
        after_kill()
    ready = target.wait_ready(component, max(0.1, deadline - time.monotonic()))
    out = Outcome(component, kill.identity, ready.identity, time.time() - kill.at)
    volume_after = _volume(target, component)
    if volume_before is None:
        out.volume = f"not compared ({target.name} target: volume identity not supported)"
    elif volume_before != volume_after:
        out.failures.append(f"{component}: the replacement mounts volume {volume_after}, before the kill "
                            f"{volume_before}: not the same claim")
    else:
        out.volume = f"same ({volume_after})"
    for c in contents:
        out.written[c.kind] = {"items": c.items, "bytes": c.bytes, "where": c.where}
        try:
            out.verified[c.kind] = c.verify()
        except AssertionError as exc:
            out.failures.append(str(exc))
    for c in contents:
        try:
            c.cleanup()
        except Exception as exc:
            out.cleanup_errors.append(f"{c.kind}: {exc}")
    if out.failures:
        raise ContentLost(out,
            f"{component} lost content across a kill ({kill.signal} pid {kill.identity}, back as {ready.identity} "
            f"after {out.recovery_s:.1f} s):\n  " + "\n  ".join(out.failures)
            + f"\nreproduce: pytest suites/durability -k {component}")
    return out


def write_report(outcomes: list[Outcome], out_dir: Path) -> Path:
    """reports/durability/summary.{txt,json}: written, verified and recovery time per component."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by.setdefault(o.component, []).append(o)
    lines = [f"{'component':<11} {'kills':>5} {'recovery median':>15} {'max':>6}  verified items (bytes)"]
    for comp, os_ in by.items():
        rec = [o.recovery_s for o in os_]
        items = sum(sum(o.verified.values()) for o in os_)
        size = sum(w["bytes"] for o in os_ for w in o.written.values())
        kinds = sorted({k for o in os_ for k in o.written})
        lost = sum(1 for o in os_ if o.failures)
        lines.append(f"{comp:<11} {len(os_):>5} {statistics.median(rec):>14.2f}s {max(rec):>5.1f}s  "
                     f"{items} ({size / 1024:.0f} kB): {', '.join(kinds)}"
                     + (f"; LOST content in {lost} kill(s): see summary.json" if lost else ""))
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    (out_dir / "summary.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return out_dir / "summary.txt"
