"""The conformance report's model: one result per test, counted per suite and per area, and the verdicts drawn
from them (docs/conformance-report.md is the schema)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

SCHEMA_VERSION = 1

# The areas are the project's registered markers (pyproject.toml), in the order a reader goes through them;
# tests/unit/test_conformance_report.py fails when a marker is registered without being listed here.
AREAS = ("smoke", "static", "isolation", "durability", "mlflow", "model", "latency", "chaos", "observability",
         "robustness", "images", "stack", "cluster")
OTHER_AREA = "other"  # a test that carries none of the area markers (the project's own unit tests)

CONFORMS, DOES_NOT_CONFORM, INCOMPLETE, NOT_RUN = "conforms", "does-not-conform", "incomplete", "not-run"
VERDICT_TEXT = {CONFORMS: "conforms", DOES_NOT_CONFORM: "does not conform", INCOMPLETE: "incomplete",
                NOT_RUN: "not run"}
# What a test came to; "failed" and "error" are the stack's failures, "environment" the host's (a failure whose
# JUnit property is verdict=environment), "not_run" a collected test that never reported (interrupted, -x).
OUTCOMES = ("passed", "failed", "error", "environment", "skipped", "not_run")
MESSAGE_LINES = 4  # a failure's first lines: enough for "expected vs actual, object"; the rest is in junit.xml
MESSAGE_CHARS = 600
FINDING_LINES = 12  # a static finding lists one problem per line: keep more of them


def first_lines(text: str, lines: int = MESSAGE_LINES, chars: int = MESSAGE_CHARS) -> str:
    kept = "\n".join(text.strip("\n").splitlines()[:lines])
    return kept if len(kept) <= chars else kept[: chars - 1] + "…"


def suite_of(nodeid: str) -> str:
    """`suites/static/test_static.py::…` → `static`; `tests/unit/test_x.py::…` → `unit`; `test_x.py::…` → `test_x`."""
    parts = PurePosixPath(nodeid.split("::", 1)[0]).parts
    if len(parts) >= 3:
        return parts[1]
    return PurePosixPath(parts[-1]).stem if parts else "?"


def areas_of(markers: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    found = [a for a in AREAS if a in markers]
    return found or [OTHER_AREA]


@dataclass
class Failure:
    test_id: str
    when: str  # setup | call | teardown | collect
    kind: str  # stack | environment
    message: str


@dataclass
class Result:
    test_id: str
    suite: str
    areas: list[str]
    outcome: str = "not_run"
    duration_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    skip_reason: str = ""
    static: dict[str, str] | None = None  # {"rule", "object", "arg"} of a static case

    def record(self, *, when: str, outcome: str, verdict: str | None, message: str, duration_s: float) -> None:
        """Fold one phase's report in: a failure anywhere decides; a skip or pass only where nothing failed."""
        self.duration_s += duration_s
        if outcome == "failed":
            kind = "environment" if verdict == "environment" else "stack"
            self.failures.append(Failure(self.test_id, when, kind, message))
            if self.outcome not in ("failed", "error"):
                self.outcome = ("environment" if kind == "environment"
                                else "failed" if when == "call" else "error")
        elif outcome == "skipped" and self.outcome in ("not_run", "passed"):
            self.outcome, self.skip_reason = "skipped", message
        elif outcome == "passed" and when == "call" and self.outcome == "not_run":
            self.outcome = "passed"


def verdict_of(counts: Counter[str] | dict[str, int]) -> str:
    """A group's verdict: a stack failure decides; then anything left unjudged; then whether anything passed."""
    if counts.get("failed", 0) or counts.get("error", 0):
        return DOES_NOT_CONFORM
    if counts.get("environment", 0) or counts.get("not_run", 0):
        return INCOMPLETE
    return CONFORMS if counts.get("passed", 0) else NOT_RUN


def _group(results: list[Result], key: str) -> dict[str, dict[str, Any]]:
    counted: dict[str, Counter[str]] = {}
    for r in results:
        for name in (r.areas if key == "areas" else [r.suite]):
            counted.setdefault(name, Counter())[r.outcome] += 1
    # Every area is listed, collected or not, so a dashboard finds the same keys in every report.
    order = [*AREAS, *([OTHER_AREA] if OTHER_AREA in counted else [])] if key == "areas" else sorted(counted)
    return {name: {"verdict": verdict_of(counted.get(name, Counter())), "tests": sum(counted.get(name, {}).values()),
                   "counts": {o: counted.get(name, Counter())[o] for o in OUTCOMES}}
            for name in order}


def static_findings(results: list[Result]) -> dict[str, Any]:
    """The static suite's cases by rule, each failing case under its object with the finding's text."""
    rules: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.static is None:
            continue
        rule = rules.setdefault(r.static["rule"], {"counts": Counter(), "objects": {}})
        rule["counts"][r.outcome] += 1
        for f in r.failures:
            rule["objects"].setdefault(r.static["object"], []).append(
                {"test_id": r.test_id, "arg": r.static.get("arg", ""), "kind": f.kind,
                 "message": first_lines(f.message, FINDING_LINES, 2000)})
    out = {name: {"verdict": verdict_of(v["counts"]), "counts": {o: v["counts"][o] for o in OUTCOMES},
                  "objects": v["objects"]} for name, v in sorted(rules.items())}
    return {"status": "available" if out else NOT_RUN, "findings": sum(len(fs) for v in out.values()
                                                                        for fs in v["objects"].values()),
            "rules": out}


def session_verdict(counts: dict[str, int], *, exit_status: int, collection_errors: int,
                    interrupted: bool) -> tuple[str, list[str]]:
    """The overall verdict and why, in words; exit statuses are pytest's (2 interrupted, 3 internal error, 4 usage
    error, 5 no tests collected)."""
    reasons = []
    if counts["failed"] or counts["error"]:
        reasons.append(f"{counts['failed'] + counts['error']} failure(s) of the stack")
    if counts["environment"]:
        reasons.append(f"{counts['environment']} environment verdict(s): the host could not carry the run")
    if collection_errors:
        reasons.append(f"{collection_errors} collection error(s)")
    if interrupted or exit_status in (2, 3, 4):
        reasons.append(f"session interrupted (pytest exit status {exit_status})")
    if counts["not_run"]:
        reasons.append(f"{counts['not_run']} collected test(s) did not run")
    if not counts["passed"]:
        reasons.append("no test passed: nothing was verified")
    if counts["failed"] or counts["error"]:
        return DOES_NOT_CONFORM, reasons
    if reasons:
        return INCOMPLETE, reasons
    return CONFORMS, [f"{counts['passed']} test(s) passed" + (f", {counts['skipped']} skipped"
                                                              if counts["skipped"] else "")]


def summarize(results: list[Result], *, exit_status: int, collection_errors: list[Failure],
              interrupted: bool) -> dict[str, Any]:
    """The results part of the document: verdict, counts, per area and suite, failures, skips, static findings."""
    counts = Counter(r.outcome for r in results)
    verdict, reasons = session_verdict({o: counts[o] for o in OUTCOMES}, exit_status=exit_status,
                                       collection_errors=len(collection_errors), interrupted=interrupted)
    by_id = {r.test_id: r for r in results}
    failures = [{"test_id": f.test_id, "suite": suite_of(f.test_id),
                 "areas": by_id[f.test_id].areas if f.test_id in by_id else [], "when": f.when, "kind": f.kind,
                 "message": first_lines(f.message)}
                for f in [*collection_errors, *(f for r in results for f in r.failures)]]
    skips: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.outcome == "skipped":
            entry = skips.setdefault(first_lines(r.skip_reason, 1, 300), {"count": 0, "areas": set()})
            entry["count"] += 1
            entry["areas"].update(r.areas)
    return {
        "verdict": verdict, "verdict_text": VERDICT_TEXT[verdict], "verdict_reasons": reasons,
        "counts": {"tests": len(results), **{o: counts[o] for o in OUTCOMES}},
        "areas": _group(results, "areas"), "suites": _group(results, "suite"),
        "failures": failures,
        "skips": [{"reason": reason, "count": v["count"], "areas": [a for a in [*AREAS, OTHER_AREA] if a in v["areas"]]}
                  for reason, v in sorted(skips.items(), key=lambda kv: -kv[1]["count"])],
        "static": static_findings(results),
        "tests": [{"test_id": r.test_id, "suite": r.suite, "areas": r.areas, "outcome": r.outcome,
                   "duration_s": round(r.duration_s, 3)} for r in results],
    }
