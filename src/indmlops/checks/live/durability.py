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
from indmlops.checks.live.content.base import Unreadable
from indmlops.errors import NotSupportedByTarget
from indmlops.targets.base import Target

# How long a store that answers its protocol may still fail reads of what it holds (its own errors, not absence)
# before the verdict says it does not serve its content. Reads are retried every READ_RETRY_S meanwhile.
SERVING_WINDOW_S = 30.0
READ_RETRY_S = 1.0
# Reads that fail after Ready and then succeed are late, not lost; but Ready is meant to say "serving": a store
# that fails reads for longer than this after saying Ready has a readiness finding (it answers its probe before its
# data path works). 5 s = five read retries, longer than any probe period of the shipped readiness checks.
READY_GRACE_S = 5.0


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
    unserved: list[str] = field(default_factory=list)  # reads the store kept failing: neither kept nor lost proven
    late: list[str] = field(default_factory=list)  # reads that failed after Ready, then succeeded
    ready_too_early: list[str] = field(default_factory=list)  # late beyond READY_GRACE_S: a readiness finding
    cleanup_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{k}: {self.verified.get(k, 0)}/{w['items']} ({w['bytes'] / 1024:.0f} kB)"
                 for k, w in self.written.items()]
        return (f"{self.component}: pid {self.kill_identity} -> {self.ready_identity}, recovered in "
                f"{self.recovery_s:.2f} s; verified " + "; ".join(parts) + (f"; volume {self.volume}"
                                                                          if self.volume else "")
                + "".join(f"; LATE {note}" for note in self.late))


class ContentLost(AssertionError):
    """Content did not survive; `outcome` still says what was written, verified and how long recovery took."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class ContentNotServed(ContentLost):
    """The component came back Ready yet kept failing reads of its content with errors of its own: a failure of
    the stack (Ready must mean serving), but not proof that anything was lost."""


def _verify(c: Content, window: float) -> tuple[int | None, str, float]:
    """(items verified, a note when reads failed first, seconds they failed), or (None, why, seconds) when the store
    still failed reads after `window` s. AssertionError (content absent or changed) passes through: that is an
    answer, not a failure."""
    t0 = time.monotonic()
    first: str | None = None
    while True:
        try:
            n = c.verify()
        except Unreadable as exc:
            first = first or str(exc)
            if time.monotonic() - t0 >= window:
                return None, (f"{exc} (still after {window:.0f} s of reads since the component was Ready; first: "
                              f"{first[:300]})"), time.monotonic() - t0
            time.sleep(READ_RETRY_S)
            continue
        failed_s = time.monotonic() - t0 if first else 0.0
        note = f"{c.kind}: reads failed for {failed_s:.1f} s after Ready ({first[:300]})" if first else ""
        return n, note, failed_s


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
            verified, note, failed_s = _verify(c, SERVING_WINDOW_S)
        except AssertionError as exc:
            out.failures.append(str(exc))
            continue
        if verified is None:
            out.unserved.append(note)
        else:
            out.verified[c.kind] = verified
            if note:
                out.late.append(note)
            if failed_s > READY_GRACE_S:
                out.ready_too_early.append(note)
    for c in contents:
        try:
            c.cleanup()
        except Exception as exc:
            out.cleanup_errors.append(f"{c.kind}: {exc}")
    how = f"({kill.signal} pid {kill.identity}, back as {ready.identity} after {out.recovery_s:.1f} s)"
    reproduce = f"\nreproduce: pytest suites/durability -k {component}"
    if out.failures:
        raise ContentLost(out, f"{component} lost content across a kill {how}:\n  " + "\n  ".join(
            out.failures + [f"also not served: {u}" for u in out.unserved]) + reproduce)
    if out.unserved or out.ready_too_early:
        if not out.unserved:
            raise ContentNotServed(out,
                f"{component} said Ready after a kill {how} before it served its content (nothing lost: the reads "
                f"succeeded later, but more than {READY_GRACE_S:g} s after Ready): its readiness check answers "
                "before its data path works:\n  " + "\n  ".join(out.ready_too_early) + reproduce)
        raise ContentNotServed(out,
            f"{component} is Ready after a kill {how} but does not serve its content: reads fail in the store, so "
            "nothing is proven lost or kept (a readiness signal that answers before the data path works, or a "
            "store that cannot read its data):\n  " + "\n  ".join(out.unserved) + reproduce)
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
        unserved = sum(1 for o in os_ if o.unserved and not o.failures)
        late = sum(1 for o in os_ if o.late)
        lines.append(f"{comp:<11} {len(os_):>5} {statistics.median(rec):>14.2f}s {max(rec):>5.1f}s  "
                     f"{items} ({size / 1024:.0f} kB): {', '.join(kinds)}"
                     + (f"; LOST content in {lost} kill(s): see summary.json" if lost else "")
                     + (f"; content NOT SERVED after {unserved} kill(s)" if unserved else "")
                     + (f"; reads failed after Ready, then served, in {late} kill(s)" if late else ""))
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    (out_dir / "summary.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return out_dir / "summary.txt"


# The running database's commit durability, as the server reports it (SHOW), not as its configuration files say: a
# setting changed with ALTER SYSTEM, a -c flag or a conf.d include is what the server runs with. `synchronous_commit
# off` acknowledges a commit before its WAL is flushed (up to 3 × wal_writer_delay of commits lost on a crash);
# `fsync off` and `full_page_writes off` can corrupt the whole cluster on one.
DURABLE_SETTINGS = {"fsync": ("on",), "full_page_writes": ("on",),
                    "synchronous_commit": ("on", "local", "remote_write", "remote_apply")}


def database_commits_durably(target: Target) -> str:
    """The running PostgreSQL's commit durability settings hold; the message names each that does not."""
    import psycopg

    ep, creds = target.endpoint("postgres"), target.credentials("postgres")
    with psycopg.connect(host=ep.host, port=ep.port, user=creds.username, password=creds.password,
                         dbname=creds.extra["database"], connect_timeout=5) as conn:
        running = {name: str((conn.execute(f"SHOW {name}").fetchone() or ("?",))[0]) for name in DURABLE_SETTINGS}
    bad = [f"{k} = {v} (expected {' or '.join(DURABLE_SETTINGS[k])})" for k, v in running.items()
           if v not in DURABLE_SETTINGS[k]]
    assert not bad, (
        f"PostgreSQL {ep.host}:{ep.port} runs with {', '.join(bad)}: acknowledged commits can be lost on a crash. "
        "Find where it is set with `SELECT name, setting, source, sourcefile FROM pg_settings WHERE name IN "
        "('fsync', 'full_page_writes', 'synchronous_commit')`")
    return ", ".join(f"{k} = {v}" for k, v in running.items())
