"""The pytest side of the conformance report: results kept in memory as the session reports them, the target's
versions while it is open, and at the end of every session (passed, failed, interrupted, collection failed)
reports/conformance.json and reports/conformance.html, with a few lines in the terminal."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from indmlops import __version__
from indmlops.plugin.config import option, resolved_options
from indmlops.plugin.conformance import evidence, htmlpage
from indmlops.plugin.conformance.model import (
    AREAS,
    OTHER_AREA,
    SCHEMA_VERSION,
    VERDICT_TEXT,
    Failure,
    Result,
    areas_of,
    suite_of,
    summarize,
)


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # a skip: (path, line, reason)
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(report.longrepr or "").splitlines()
    # A collection error is prose, then a traceback: the exception is on its "E   " lines, at the end.
    raised = [line[1:].strip() for line in text if line.startswith("E   ")]
    return "\n".join(text[:1] + raised) if raised else "\n".join(text)


def _static_case(item: pytest.Item) -> dict[str, str] | None:
    """The rule and object of a static suite case (its `static_case` parameter), else None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "static_case" not in callspec.params:
        return None
    case = callspec.params["static_case"]
    if hasattr(case, "rule") and hasattr(case, "subject"):
        return {"rule": str(case.rule), "object": str(case.subject), "arg": str(getattr(case, "arg", ""))}
    subject, _, rule = callspec.id.partition(":")  # the manifests or the intent could not be read: "manifests:render"
    return {"rule": rule or callspec.id, "object": subject, "arg": ""}


class ConformanceRecorder:
    """Registered by the plugin's pytest_configure (not on xdist workers: the controller sees every report)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.time()
        self.results: dict[str, Result] = {}
        self.collection_errors: list[Failure] = []
        self.interrupted = False
        self.header: list[str] = []
        self.target: dict[str, Any] = {}
        self.written: dict[str, Any] | None = None
        self.error: str | None = None

    # --- in memory, as the session goes --------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()
        from indmlops.plugin.session import pytest_report_header

        try:
            self.header = pytest_report_header(self.config)
        except Exception as exc:  # the header's own errors are the terminal's business
            self.header = [f"report header unavailable: {exc}"]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(Failure(report.nodeid or "<session>", "collect", "stack", _message(report)))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.results[item.nodeid] = Result(item.nodeid, suite_of(item.nodeid),
                                                   areas_of({m.name for m in item.iter_markers()}),
                                                   static=_static_case(item))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:  # reported but not collected here (an xdist controller): markers from the keywords
            result = self.results[report.nodeid] = Result(report.nodeid, suite_of(report.nodeid),
                                                              areas_of(set(report.keywords) & set(AREAS)))
        outcome, message = report.outcome, _message(report) if not report.passed else ""
        if hasattr(report, "wasxfail"):  # an expected failure is not a verified behaviour: counted as skipped
            outcome, message = ("skipped", f"xfail: {report.wasxfail}") if report.skipped else ("passed", "")
        verdict = dict(report.user_properties).get("verdict")  # set by verdicts.record_verdict on every failure
        result.record(when=report.when, outcome=outcome, verdict=str(verdict) if verdict else None, message=message,
                      duration_s=report.duration)

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
        value = yield
        if fixturedef.argname == "target" and not self.target:
            self.target = self._describe(value)
        return value

    @staticmethod
    def _describe(opened: Any) -> dict[str, Any]:
        """The opened target's own line and the versions of what it runs, while it runs."""
        out: dict[str, Any] = {}
        for key, call in (("description", "describe"), ("versions", "versions")):
            try:
                out[key] = getattr(opened, call)()
            except Exception as exc:  # a version that cannot be read is reported as such, never fatal
                out[key] = f"unknown ({type(exc).__name__}: {exc})"
        return out

    # --- at the end ----------------------------------------------------------------------------------------------

    def document(self, exit_status: int) -> dict[str, Any]:
        reports = Path(option(self.config, "reports_dir"))
        finished = time.time()
        try:
            options = {n: {"value": r.value, "source": r.source} for n, r in resolved_options(self.config).items()}
        except Exception:
            options = {}
        stamp = lambda t: datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "generated_by": f"indmlops {__version__}, pytest {pytest.__version__}",
            "session": {"started_at": stamp(self.started), "finished_at": stamp(finished),
                        "duration_s": round(finished - self.started, 1), "exit_status": int(exit_status),
                        "interrupted": self.interrupted or int(exit_status) == 2,
                        "args": list(self.config.invocation_params.args), "rootdir": str(self.config.rootpath),
                        "reports_dir": str(reports), "collection_errors": len(self.collection_errors)},
        }
        doc |= summarize(list(self.results.values()), exit_status=int(exit_status),
                         collection_errors=self.collection_errors, interrupted=doc["session"]["interrupted"])
        doc |= evidence.gather(reports, self.started)
        doc["target"] = {"name": options.get("target", {}).get("value"), "options": options, "header": self.header,
                         "description": self.target.get("description"), "versions": self.target.get("versions"),
                         "note": None if self.target else "no test used the target: nothing was opened"}
        return doc

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly:  # nothing ran: keep the last real session's report
            return
        reports = Path(option(self.config, "reports_dir"))
        try:
            doc = self.document(exitstatus)
        except Exception as exc:  # the report must not crash the session: say what broke, in both files
            self.error = f"{type(exc).__name__}: {exc}"
            doc = {"schema_version": SCHEMA_VERSION, "verdict": "incomplete", "verdict_text": "incomplete",
                   "verdict_reasons": [f"the conformance report could not be built: {self.error}"],
                   "session": {"exit_status": int(exitstatus)}}
        try:
            reports.mkdir(parents=True, exist_ok=True)
            _write(reports / "conformance.json", json.dumps(doc, indent=2, default=str) + "\n")
            _write(reports / "conformance.html", htmlpage.render(doc, plot_png=_plot(doc)))
            self.written = doc
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        tr, doc, reports = terminalreporter, self.written, Path(option(self.config, "reports_dir"))
        if doc is None and self.error is None:
            return
        tr.write_sep("=", "indmlops conformance")
        if doc is None:
            tr.write_line(f"conformance report not written: {self.error}", red=True)
            return
        verdict = doc["verdict"]
        tr.write_line(f"verdict: {VERDICT_TEXT.get(verdict, verdict)} ({'; '.join(doc['verdict_reasons'])})",
                      green=verdict == "conforms", red=verdict == "does-not-conform",
                      yellow=verdict == "incomplete", bold=True)
        areas = doc.get("areas") or {}
        for name, area in areas.items():
            c = area["counts"]
            if area["tests"]:
                parts = [f"{c[k]} {k.replace('_', ' ')}" for k in c if c[k]]
                label = "(no area marker)" if name == OTHER_AREA else ""
                tr.write_line(f"  {name:<14}{VERDICT_TEXT[area['verdict']]:<17}{', '.join(parts)} {label}".rstrip())
        idle = [name for name, area in areas.items() if not area["tests"]]
        if idle:
            tr.write_line(f"  no test collected: {', '.join(idle)}")
        tr.write_line(f"report: {reports / 'conformance.html'} (schema: {reports / 'conformance.json'})")
        if self.error:
            tr.write_line(f"conformance report incomplete: {self.error}", red=True)


def _plot(doc: dict[str, Any]) -> bytes | None:
    path = (doc.get("latency") or {}).get("plot")
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a dashboard polling the file never reads half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def register(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its controller writes the one report
        return
    if not config.pluginmanager.has_plugin("indmlops-conformance"):
        config.pluginmanager.register(ConformanceRecorder(config), "indmlops-conformance")

