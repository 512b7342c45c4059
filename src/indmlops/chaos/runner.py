"""Run a fixtures/chaos experiment with chaostoolkit's library against a target, keep its journal, and read the
journal back as evidence: was the hypothesis met before and after, did the fault happen, how long did recovery
take, what did the traffic lose."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from indmlops.chaos import context
from indmlops.paths import REPO_ROOT
from indmlops.targets.base import Target

EXPERIMENTS_DIR = REPO_ROOT / "fixtures" / "chaos"


def experiments(profile: str | None = None) -> list[str]:
    """The experiments of fixtures/chaos; with `profile`, those its tags admit: an experiment tagged `profile:P`
    runs only in profile P (a 300 s outage is for nightly runs), one without such a tag in every profile."""
    names = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.json"))
    if profile is None:
        return names

    def admits(name: str) -> bool:
        tags = json.loads((EXPERIMENTS_DIR / f"{name}.json").read_text()).get("tags") or []
        wanted = {t.split(":", 1)[1] for t in tags if t.startswith("profile:")}
        return not wanted or profile in wanted

    return [n for n in names if admits(n)]


def traffic_rates(profile: str | None = None) -> list[float]:
    """Readings/s each experiment's traffic offers (its `start` activities): the host must carry these too."""
    rates = []
    for name in experiments(profile):
        doc = json.loads((EXPERIMENTS_DIR / f"{name}.json").read_text())
        for act in doc.get("method") or []:
            prov = act.get("provider") or {}
            if prov.get("module") == "indmlops.chaos.traffic" and prov.get("func") == "start":
                rates.append(float((prov.get("arguments") or {}).get("rate", 100.0)))
    return rates


@dataclass
class ChaosRun:
    name: str
    journal: dict
    journal_path: Path

    @property
    def status(self) -> str:
        return self.journal.get("status") or "unknown"

    def hypothesis_met(self, when: str) -> bool:
        state = (self.journal.get("steady_states") or {}).get(when) or {}
        return bool(state.get("steady_state_met"))

    def records(self, func: str) -> list[dict]:
        """The method's succeeded activities calling `func`, each with its arguments and output."""
        return [r for r in self.journal.get("run") or []
                if r["activity"]["provider"].get("func") == func and r.get("status") == "succeeded"]

    def failures(self, func: str) -> list[str]:
        """Why each of the method's activities calling `func` did not succeed (the exception's last line)."""
        return [_why(r) for r in self.journal.get("run") or []
                if r["activity"]["provider"].get("func") == func and r.get("status") != "succeeded"]

    def outputs(self, func: str) -> list:
        return [r.get("output") for r in self.records(func)]

    def rollback_outputs(self, func: str) -> list:
        """Outputs of the rollbacks calling `func` (traffic accounted after an interrupted run, say)."""
        return [r.get("output") for r in self.journal.get("rollbacks") or []
                if r["activity"]["provider"].get("func") == func and r.get("status") == "succeeded"]

    def recoveries(self) -> list[dict]:
        """Every recovery of the run: after a kill (wait_ready) and after an outage (release)."""
        return self.outputs("wait_ready") + self.outputs("release")

    def problems(self) -> list[str]:
        out = []
        for when in ("before", "after"):
            for p in ((self.journal.get("steady_states") or {}).get(when) or {}).get("probes", []):
                if not p.get("tolerance_met", p.get("status") == "succeeded"):
                    out.append(f"hypothesis {when}: {p['activity']['name']}: {_why(p)}")
        for section in ("run", "rollbacks"):
            for r in self.journal.get(section) or []:
                if r.get("status") != "succeeded":
                    out.append(f"{section}: {r['activity']['name']} {r.get('status')}: {_why(r)}")
        return out

    def summary(self) -> str:
        lines = [f"experiment {self.name} (fixtures/chaos/{self.name}.json): status {self.status}, "
                 f"deviated {self.journal.get('deviated')}, hypothesis before "
                 f"{'met' if self.hypothesis_met('before') else 'NOT met'}, after "
                 f"{'met' if self.hypothesis_met('after') else 'NOT met'}"]
        lines += [f"  - {p}" for p in self.problems()]
        for rec in self.recoveries():
            outage = f" after a {rec['outage_s']:.0f} s outage" if "outage_s" in rec else ""
            lines.append(f"  recovered: {rec['component']} {rec['old_identity']} -> {rec['new_identity']} in "
                         f"{rec['recovery_s']:.1f} s{outage} (bound {rec['bound_s']:g} s), restarts {rec['restarts']}")
        for tr in self.outputs("stop"):
            lines.append(f"  traffic: {tr.get('summary') or json.dumps(tr)}")
        lines.append(f"  journal: {self.journal_path}")
        lines.append(f"  reproduce: INDMLOPS_STATE_DIR=<state dir> .venv/bin/chaos run --rollback-strategy always "
                     f"fixtures/chaos/{self.name}.json")
        return "\n".join(lines)


def _why(record: dict) -> str:
    exc = record.get("exception")
    if exc:
        text = "".join(exc) if isinstance(exc, list) else str(exc)
        return text.strip().splitlines()[-1][:400]
    return f"output {record.get('output')!r}"


def run(name: str, target: Target, journal_dir: Path, *, path: Path | None = None, repeat: int = 1) -> ChaosRun:
    """Run fixtures/chaos/<name>.json (or `path`) against `target`; rollbacks always play. The journal is kept as
    <journal_dir>/<name>.<repeat>.journal.json."""
    from chaoslib.experiment import run_experiment
    from chaoslib.loader import load_experiment

    path = path or EXPERIMENTS_DIR / f"{name}.json"
    journal_dir.mkdir(parents=True, exist_ok=True)
    context.use_target(target)
    logging.getLogger("chaostoolkit").setLevel(logging.INFO)
    try:
        experiment = load_experiment(str(path))
        journal = run_experiment(experiment, settings={"runtime": {"rollbacks": {"strategy": "always"}}})
    finally:
        context.use_target(None)
    journal_path = journal_dir / f"{name}.{repeat}.journal.json"
    journal_path.write_text(json.dumps(journal, indent=2, default=str))
    return ChaosRun(name, journal, journal_path)


def summarize(journal_dir: Path) -> str:
    """Every journal in `journal_dir`: recovery per component (runs, median, worst) and traffic per experiment."""
    import statistics

    recoveries: dict[str, list[float]] = {}
    traffic: dict[str, list[dict]] = {}
    statuses: dict[str, list[str]] = {}
    for path in sorted(journal_dir.glob("*.journal.json")):
        journal = json.loads(path.read_text())
        name = path.name.split(".")[0]
        run = ChaosRun(name, journal, path)
        statuses.setdefault(name, []).append(run.status)
        for rec in run.recoveries():
            recoveries.setdefault(rec["component"], []).append(rec["recovery_s"])
        traffic.setdefault(name, []).extend(run.outputs("stop"))
    lines = ["recovery (kill sent -> protocol answers)", f"{'component':<12}{'kills':>6}{'median s':>10}{'worst s':>9}"]
    for comp, xs in sorted(recoveries.items()):
        lines.append(f"{comp:<12}{len(xs):>6}{statistics.median(xs):>10.2f}{max(xs):>9.2f}")
    lines += ["", "QoS1 traffic across the faults (readings)",
              f"{'experiment':<28}{'runs':>5}{'published':>10}{'acked':>8}{'late':>6}{'lost':>6}{'undrained':>10}"
              f"{'dup':>5}{'resent':>7}"]
    for name, ts in sorted(traffic.items()):
        if ts:
            lines.append(f"{name:<28}{len(ts):>5}{sum(t['published'] for t in ts):>10}"
                         f"{sum(t['acknowledged'] for t in ts):>8}{sum(t.get('late', 0) for t in ts):>6}"
                         f"{sum(t['lost_acknowledged'] for t in ts):>6}{sum(t.get('undrained', 0) for t in ts):>10}"
                         f"{sum(t['duplicates'] for t in ts):>5}{sum(t.get('resent_gap', 0) for t in ts):>7}")
    lines += ["", "catch-up (ready -> current again: in_a_row predictions within current_ms, fixtures/slo.yaml)",
              f"{'experiment':<36}{'recoveries':>11}{'worst s':>9}{'bound s':>9}{'drain/s':>9}"]
    for name, ts in sorted(traffic.items()):
        cs = [c for t in ts for c in t.get("catch_up") or []]
        if cs:
            worst = max(cs, key=lambda c: float("inf") if c["catch_up_s"] is None else c["catch_up_s"])
            shown = "never" if worst["catch_up_s"] is None else f"{worst['catch_up_s']:.1f}"
            lines.append(f"{name:<36}{len(cs):>11}{shown:>9}{worst['bound_s'] or 0:>9g}"
                         f"{max(c['drain_rate'] for c in cs):>9.0f}")
    lines += ["", "status: " + ", ".join(f"{n} {'/'.join(sorted(set(s)))} ×{len(s)}"
                                         for n, s in sorted(statuses.items()))]
    text = "\n".join(lines) + "\n"
    (journal_dir / "summary.txt").write_text(text)
    return text
