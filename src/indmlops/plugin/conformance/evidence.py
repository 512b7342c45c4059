"""What the suites keep under reports/ (the static and live isolation matrices, durability's summary, the latency
verdict and plot, chaos journals, the host's figures), read back for the conformance report. Each reader returns a
section whose `status` says whether it holds this session's evidence: a file absent or older than the session is
"not-run", one that cannot be read is "not-available" with the reason; none of them raises."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from indmlops.plugin.conformance.model import CONFORMS, DOES_NOT_CONFORM, NOT_RUN

# A file written up to 2 s before the session began (a coarse mtime, a clock step) is still taken as this session's.
FRESH_SLACK_S = 2.0

Section = dict[str, Any]


def _fresh(path: Path, since: float) -> Section | None:
    """None when `path` holds this session's evidence, else the "not-run" section saying why."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {"status": NOT_RUN, "path": str(path), "note": f"{path} was not written in this session"}
    if mtime < since - FRESH_SLACK_S:
        return {"status": NOT_RUN, "path": str(path),
                "note": f"{path} is from an earlier session: not this session's evidence"}
    return None


def _guarded(read: Callable[[Path], Section], path: Path, since: float) -> Section:
    stale = _fresh(path, since)
    if stale is not None:
        return stale
    try:
        return {"status": "available", "path": str(path), **read(path)}
    except Exception as exc:  # junk or a half-written file: say so in the report, never lose the report over it
        return {"status": "not-available", "path": str(path), "note": f"{path} could not be read: "
                                                                      f"{type(exc).__name__}: {exc}"}


def _static_matrix(path: Path) -> Section:
    lines = path.read_text().splitlines()
    head = lines[0] if lines else ""
    found = re.search(r"\((\d+) of (\d+) cells allowed", head)
    return {"summary": head, "allowed": int(found[1]) if found else None, "cells": int(found[2]) if found else None,
            "rows": [line.strip() for line in lines[1:] if line.strip()]}


def _live_matrix(path: Path) -> Section:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    probed = [r for r in rows if r["observed"] != "not probed"]
    # The same rule as LiveCell.differs: unobserved, or observed other than the static matrix or the intent.
    differing = [r for r in probed if r["observed"] not in ("allow", "deny") or r["observed"] != r["static"]
                 or (r["intent"] in ("allow", "deny") and r["observed"] != r["intent"])]
    return {"cells": len(probed), "allowed": sum(1 for r in probed if r["observed"] == "allow"),
            "differing": [{k: r[k] for k in ("source", "destination", "port", "protocol", "intent", "static",
                                             "observed", "outcome")} for r in differing],
            "not_probed": len(rows) - len(probed)}


def isolation(reports: Path, since: float) -> Section:
    """The static reachability matrix (static suite) and the live one (isolation suite), each with its own status."""
    return {"static_matrix": _guarded(_static_matrix, reports / "static" / "isolation-matrix.txt", since),
            "live_matrix": _guarded(_live_matrix, reports / "isolation" / "matrix.csv", since)}


def _durability(path: Path) -> Section:
    by: dict[str, list[dict[str, Any]]] = {}
    for outcome in json.loads(path.read_text()):
        by.setdefault(outcome["component"], []).append(outcome)
    components = []
    for name, outs in by.items():
        rec = [float(o["recovery_s"]) for o in outs]
        components.append({
            "component": name, "kills": len(outs), "recovery_median_s": round(statistics.median(rec), 3),
            "recovery_max_s": round(max(rec), 3),
            "items_verified": sum(sum(o["verified"].values()) for o in outs),
            "bytes_written": sum(w["bytes"] for o in outs for w in o["written"].values()),
            "kinds": sorted({k for o in outs for k in o["written"]}),
            "kills_losing_content": sum(1 for o in outs if o["failures"]),
            "failures": [f for o in outs for f in o["failures"]]})
    lost = any(c["kills_losing_content"] for c in components)
    return {"verdict": DOES_NOT_CONFORM if lost else CONFORMS, "components": components,
            "items_verified": sum(c["items_verified"] for c in components)}


def durability(reports: Path, since: float) -> Section:
    return _guarded(_durability, reports / "durability" / "summary.json", since)


def latency(reports: Path, since: float) -> Section:
    """The verdict table of the latency run (reports/latency/verdict.csv) and where its plot is."""
    out_dir = reports / "latency"

    def read(path: Path) -> Section:
        rows = [{"operation": r["operation"], "measure": r["measure"], "bound": r["bound"], "measured": r["measured"],
                 "ok": r["ok"].strip().lower() == "true"} for r in csv.DictReader(io.StringIO(path.read_text()))]
        plot = out_dir / "latency.png"
        return {"verdict": CONFORMS if all(r["ok"] for r in rows) else DOES_NOT_CONFORM, "rows": rows,
                "plot": str(plot) if _fresh(plot, since) is None else None,
                "locust_html": str(out_dir / "locust.html") if _fresh(out_dir / "locust.html", since) is None
                else None}

    return _guarded(read, out_dir / "verdict.csv", since)


def chaos(reports: Path, since: float) -> Section:
    """Every chaos journal of this session: each experiment's runs, hypothesis and traffic, recovery per component."""
    journals = sorted((reports / "chaos").glob("*.journal.json"))
    fresh = [p for p in journals if _fresh(p, since) is None]
    if not fresh:
        return {"status": NOT_RUN, "path": str(reports / "chaos"),
                "note": "no chaos journal was written in this session" + (
                    f" ({len(journals)} from earlier sessions ignored)" if journals else "")}

    def read(_path: Path) -> Section:
        from indmlops.chaos.runner import ChaosRun  # chaoslib is loaded already when a journal was written

        experiments: dict[str, dict[str, Any]] = {}
        recoveries: dict[str, list[float]] = {}
        for path in fresh:
            run = ChaosRun(path.name.split(".")[0], json.loads(path.read_text()), path)
            exp = experiments.setdefault(run.name, {"runs": 0, "statuses": [], "hypothesis_met": True, "published": 0,
                                                    "acknowledged": 0, "late": 0, "lost": 0, "undrained": 0,
                                                    "duplicates": 0, "journals": []})
            exp["runs"] += 1
            exp["statuses"].append(run.status)
            exp["hypothesis_met"] &= run.hypothesis_met("before") and run.hypothesis_met("after")
            exp["journals"].append(str(path))
            for rec in run.outputs("wait_ready"):
                recoveries.setdefault(rec["component"], []).append(float(rec["recovery_s"]))
            for tr in run.outputs("stop"):
                for key, field in (("published", "published"), ("acknowledged", "acknowledged"), ("late", "late"),
                                   ("lost", "lost_acknowledged"), ("undrained", "undrained"),
                                   ("duplicates", "duplicates")):
                    exp[key] += int(tr.get(field) or 0)
        ok = all(set(e["statuses"]) == {"completed"} and e["hypothesis_met"] and not e["lost"]
                 for e in experiments.values())
        return {"verdict": CONFORMS if ok else DOES_NOT_CONFORM, "experiments": experiments,
                "recovery": [{"component": c, "kills": len(xs), "median_s": round(statistics.median(xs), 3),
                              "worst_s": round(max(xs), 3)} for c, xs in sorted(recoveries.items())],
                "summary_txt": str(reports / "chaos" / "summary.txt")}

    return _guarded(read, fresh[-1], since)


FIGURES = ("cores", "cpu_quota_cores", "loadavg", "psi_cpu_some_avg10", "psi_io_some_avg10", "fsync_per_s",
           "fsync_p50_ms", "fsync_p99_ms", "tcp_rtt_p50_us", "generator_per_s", "foreign_cores", "steal_cores",
           "io_device", "foreign_write_pct", "taken_at")


def environment(reports: Path, since: float) -> Section:
    """The host's figures (reports/environment.json): the preflight's, its shortfalls, and each monitored run."""

    def read(path: Path) -> Section:
        doc = json.loads(path.read_text())
        figures = doc.get("figures") or {}
        return {"profile": doc.get("profile"), "fsync_needed_per_s": doc.get("fsync_needed_per_s"),
                "figures": {k: figures[k] for k in FIGURES if k in figures},
                "shortfalls": [s.get("text", str(s)) for s in doc.get("shortfalls") or []],
                "context": doc.get("context") or [],
                "runs": {name: {"samples": (run.get("monitor") or {}).get("samples"),
                                "seconds": (run.get("monitor") or {}).get("seconds"),
                                "shortfalls": [s.get("text", str(s)) for s in run.get("shortfalls") or []]}
                         for name, run in (doc.get("runs") or {}).items()}}

    section = _guarded(read, reports / "environment.json", since)
    if section["status"] == NOT_RUN:
        section["note"] += " (the host is measured before the first latency or chaos test)"
    return section


def gather(reports: Path, since: float) -> dict[str, Section]:
    """Every evidence section, keyed as in the report (docs/conformance-report.md)."""
    return {"isolation": isolation(reports, since), "durability": durability(reports, since),
            "latency": latency(reports, since), "chaos": chaos(reports, since),
            "environment": environment(reports, since)}
