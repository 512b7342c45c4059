"""One session's record of the host (`HostFit`): the preflight, each monitored run, the verdicts, kept in
reports/environment.json, and the judging that turns a failed claim into the host's or the stack's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from indmlops.hostcheck.attribution import OwnRoots
from indmlops.hostcheck.explain import Breach, judge, verdict_for
from indmlops.hostcheck.measure import HostFigures
from indmlops.hostcheck.monitor import HostMonitor, MonitorSummary
from indmlops.hostcheck.verdict import (
    CHANGES_PER_READING,
    Demand,
    EnvironmentVerdict,
    Shortfall,
    Thresholds,
    assess,
    assess_run,
    context,
)


class HostFit:
    """One session's preflight, the runs monitored since, and `reports/environment.json` kept up to date."""

    def __init__(self, figures: HostFigures, demand: Demand, thresholds: Thresholds, path: Path, *,
                 own_roots: OwnRoots | None = None) -> None:
        self.figures, self.demand, self.thresholds, self.path = figures, demand, thresholds, path
        self.own_roots = own_roots  # the stack's and the harness's tree roots; None: CPU and I/O not attributed
        self.shortfalls = assess(figures, demand, thresholds)
        self.context = context(figures, None, demand, thresholds)
        self.runs: dict[str, dict[str, Any]] = {}
        self.verdicts: dict[str, str] = {}
        self.write()

    @property
    def fits(self) -> bool:
        return not self.shortfalls

    def write(self) -> None:
        doc = {"profile": asdict(self.demand), "fsync_needed_per_s": self.demand.fsync_per_s,
               "changes_per_reading": CHANGES_PER_READING, "thresholds": asdict(self.thresholds),
               "figures": self.figures.to_dict(), "shortfalls": [asdict(s) for s in self.shortfalls],
               "context": self.context,
               "runs": self.runs, "verdicts": self.verdicts}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp.replace(self.path)

    def record_run(self, name: str, summary: MonitorSummary) -> list[Shortfall]:
        """Keep a run's monitor summary and what it implies; returns the run's shortfalls."""
        found = assess_run(summary, self.demand, self.thresholds)
        self.runs[name] = {"monitor": summary.to_dict(), "shortfalls": [asdict(s) for s in found],
                           "context": context(None, summary, self.demand, self.thresholds)}
        self.write()
        return found

    @contextmanager
    def monitor(self, name: str, *, interval: float = 1.0) -> Iterator[HostMonitor]:
        """Monitor the block and record it under `name`; `.summary` is set on exit."""
        mon = HostMonitor(Path(self.figures.fsync_dir) if self.figures.fsync_per_s is not None else None,
                          interval=interval, own_roots=self.own_roots, slow_fsync_ms=self.figures.slow_fsync_ms)
        try:
            with mon:
                yield mon
        finally:
            assert mon.summary is not None
            self.record_run(name, mon.summary)

    def judge(self, breach_text: str, breaches: list[Breach], monitor_summary: MonitorSummary | None = None
              ) -> NoReturn:
        judge(breach_text, self.figures, monitor_summary, demand=self.demand, breaches=breaches,
              thresholds=self.thresholds, figures_path=self.path)

    @contextmanager
    def judging(self, monitor_summary: MonitorSummary | None = None) -> Iterator[None]:
        """Around a test's asserts: an AssertionError is re-raised as it is (pytest's diff intact, a note added per
        slow-but-ours finding) unless the host fell short before or during the run *and* that explains it: a timing
        claim (`explain.timing_failure`) whose every breach is within the slowdown the shortfalls imply. Then it
        becomes an EnvironmentVerdict. Anything else (a loss, a fault that hit nothing, a breach beyond what the
        host explains) stays the stack's, with the shortfalls said as notes."""
        try:
            yield
        except EnvironmentVerdict:
            raise
        except AssertionError as exc:
            found = self.shortfalls + (assess_run(monitor_summary, self.demand, self.thresholds)
                                       if monitor_summary else [])
            said = self.context + context(None, monitor_summary, self.demand, self.thresholds)
            verdict = verdict_for(exc, found, said, demand=self.demand, figures=self.figures, monitor=monitor_summary,
                                  figures_path=self.path)
            if verdict is exc:
                raise
            raise verdict from exc

    def line(self) -> str:
        """One line for the terminal: the figures that matter and the verdict."""
        f = self.figures
        fs = f"fsync {f.fsync_per_s:.0f}/s (p50 {f.fsync_p50_ms:.2f} ms)" if f.fsync_per_s else "fsync not measured"
        if f.slow_fsync_ms:
            fs += f" under the slow-fsync shim: {f.slow_fsync_ms:g} ms per fsync"
        psi = (f"psi cpu {f.psi_cpu_some_avg10:.0f}% io {f.psi_io_some_avg10:.0f}%"
               if f.psi_cpu_some_avg10 is not None and f.psi_io_some_avg10 is not None else "no PSI")
        cpu = (f"other work {f.foreign_cores:.1f} of {f.cores} cores (ours {f.own_cores or 0:.1f})"
               if f.foreign_cores is not None else "CPU not attributed")
        io = (f"writes {f.device_write_mb_s:.1f} MB/s on {(f.io_device or '').split(' (')[0]} (others "
              f"{f.foreign_write_mb_s:.1f})" if f.io_attributed else "I/O not attributed")
        head = (f"{fs}, {io}, {f.usable_cores:g} cores, {cpu}, load {f.loadavg[0]:.2f}, {psi}, loopback p50 "
                f"{f.tcp_rtt_p50_us:.0f} µs, generator {f.generator_per_s:.0f} readings/s ({f.seconds:.1f} s)")
        if self.fits:
            return f"{head} → fits profile {self.demand.profile} ({self.demand.fsync_per_s:.0f} fsync/s needed)"
        return f"{head} → SHORT for profile {self.demand.profile}: " + "; ".join(s.text for s in self.shortfalls)
