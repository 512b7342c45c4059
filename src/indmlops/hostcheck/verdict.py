"""The verdict: what a profile demands, the shortfalls a host's figures imply (thresholds in fixtures/host.yaml),
and the EnvironmentVerdict that blames the host, not the stack, for a failed timing claim."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from indmlops import broker
from indmlops.hostcheck.measure import HostFigures
from indmlops.hostcheck.monitor import MonitorSummary
from indmlops.paths import FIXTURES_DIR

HOST_FILE = FIXTURES_DIR / "host.yaml"

# Database saves the shipped broker makes per reading (fixtures/slo.yaml): with `autosave_interval 1` and
# `autosave_on_changes true` every change is a save (rewrite + fsync), and one QoS1 reading makes ~7 changes: it is
# stored, queued for inference's persistent session and delivered to each QoS1 subscriber, and its prediction the
# same. Quick profile: 100 readings/s × 7 = 700 fsync/s; at 0.73 ms each (FIELD-NOTES, strace) that is 0.51 s of
# every second spent in fsync, so a disk that does fewer than 700 syncs/s cannot keep up at all.
CHANGES_PER_READING = 7


class HostFileError(ValueError):
    pass


@dataclass(frozen=True)
class Thresholds:
    """What a host must offer (fixtures/host.yaml explains each number)."""

    min_cores: float = 2
    fsync_margin: float = 1.0
    generator_headroom: float = 2.0
    max_cpu_pressure_pct: float = 25.0
    max_io_pressure_pct: float = 20.0
    max_load_per_core: float = 2.0
    max_fsync_p50_ms_during: float = 5.0
    max_save_stall_ms: float = 250.0
    max_foreign_cpu_pct: float = 25.0
    max_steal_pct: float = 10.0
    min_foreign_write_pct: float = 50.0
    min_own_write_mb_s: float = 0.5

    @classmethod
    def load(cls, path: Path = HOST_FILE) -> Thresholds:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise HostFileError(f"{path}: cannot read host thresholds ({exc})") from exc
        raw = (doc or {}).get("thresholds")
        if not isinstance(raw, dict):
            raise HostFileError(f"{path}: expected a mapping 'thresholds:'")
        known = set(cls.__dataclass_fields__)
        if unknown := set(raw) - known:
            raise HostFileError(f"{path}: thresholds.{sorted(unknown)[0]}: unknown (known: {', '.join(sorted(known))})")
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise HostFileError(f"{path}: thresholds.{key} = {value!r}: expected a number >= 0")
        return cls(**{k: float(v) for k, v in raw.items()})


@dataclass(frozen=True)
class Demand:
    """What a profile asks of the host: readings/s at its base level (what the broker's disk must sustain) and at
    its peak (what the generator must build), on a broker with the save policy `autosave` (indmlops.broker)."""

    profile: str
    rate: float
    peak_rate: float
    autosave: str = "1"

    @property
    def fsync_per_s(self) -> float:
        return broker.parse(self.autosave).saves_per_second(self.rate * CHANGES_PER_READING)

    @property
    def fsync_arithmetic(self) -> str:
        policy = broker.parse(self.autosave)
        if policy.timed:
            return f"a save every {policy.every} s whatever the rate"
        if policy.every <= 1:
            return f"{self.rate:g} readings/s × {CHANGES_PER_READING} saves"
        return f"{self.rate:g} readings/s × {CHANGES_PER_READING} changes ÷ a save every {policy.every}"


@dataclass(frozen=True)
class Shortfall:
    """One way the host fell short: `text` reads as a clause of the verdict."""

    what: str  # fsync | stall | generator | cores | foreign_cpu | steal | cpu_pressure | io_pressure | load
    when: str  # before (the preflight) | during (the run)
    measured: float
    needed: float
    text: str


def _pressure_or_load(when: str, cpu: float | None, io: float | None, load_per_core: float, t: Thresholds,
                      how: str, worst: dict[str, float | None] | None = None) -> list[Shortfall]:
    worst = worst or {}
    out = []
    for what, value, bound in (("cpu", cpu, t.max_cpu_pressure_pct), ("io", io, t.max_io_pressure_pct)):
        if value is not None and value > bound:
            peak = f", worst {worst[what]:.0f}%" if worst.get(what) is not None else ""
            out.append(Shortfall(f"{what}_pressure", when, value, bound, f"{what} pressure some {how} {value:.0f}%"
                                 f"{peak} (bound ≤ {bound:g}%; not attributed)"))
    if cpu is None and io is None and load_per_core > t.max_load_per_core:
        out.append(Shortfall("load", when, load_per_core, t.max_load_per_core,
                             f"load average {load_per_core:.2f} per core (bound ≤ {t.max_load_per_core:g}; no PSI)"))
    return out


def _foreign(when: str, cores: int, foreign: float, own: float, steal: float, top: list[str], psi: float | None,
             t: Thresholds, worst: float | None = None) -> list[Shortfall]:
    """The CPU clauses where our own trees are known: only work that is neither the stack's nor the harness's
    (steal included) is held against the host, and only when tasks waited for a CPU (cpu pressure over its bound, or
    no PSI to say): a stranger using a core the stack did not want took nothing from it. Alone, PSI, which counts
    everyone, never blames the host here."""
    out = []
    share, steal_pct = 100 * foreign / max(1, cores), 100 * steal / max(1, cores)
    context = f"; the stack and harness {own:.1f}" + (f", cpu pressure some {psi:.0f}%" if psi is not None else "")
    contended = psi is None or psi > t.max_cpu_pressure_pct
    if share > t.max_foreign_cpu_pct and contended:
        peak = f", worst {worst:.1f}" if worst is not None else ""
        names = f": {', '.join(top)}" if top else ""
        out.append(Shortfall("foreign_cpu", when, share, t.max_foreign_cpu_pct,
                             f"other work took {foreign:.1f} of {cores} cores{peak} ({share:.0f}%, bound ≤ "
                             f"{t.max_foreign_cpu_pct:g}%{names}{context})"))
    if steal_pct > t.max_steal_pct:
        out.append(Shortfall("steal", when, steal_pct, t.max_steal_pct,
                             f"the hypervisor stole {steal:.2f} of {cores} cores ({steal_pct:.0f}%, bound ≤ "
                             f"{t.max_steal_pct:g}%)"))
    return out


def _whose_writes(io: HostFigures | MonitorSummary, t: Thresholds) -> tuple[bool, str]:
    """Whether a slow save is the host's, and the words saying whose writes the disk was busy with. The host's when
    foreign writes were ≥ min_foreign_write_pct of the device's write bytes, or when ours were too few to have slowed
    it (< min_own_write_mb_s); not attributed (no trees known, no device), it is the host's as before."""
    if not io.io_attributed:
        return True, ""
    label = io.io_device or ""
    dev = "the host's disks" if label.startswith("all ") else label.split(" (")[0]
    device, own, foreign = io.device_write_mb_s or 0.0, io.own_write_mb_s or 0.0, io.foreign_write_mb_s or 0.0
    pct = io.foreign_write_pct or 0.0
    unknown = io.unattributed_write_mb_s or 0.0
    hidden = f", {unknown:.1f} by nobody we may read (not counted against the host)" if unknown >= 0.05 else ""
    if pct >= t.min_foreign_write_pct or own < t.min_own_write_mb_s:
        few = (f", under {t.min_own_write_mb_s:g} MB/s: too little to slow a save"
               if pct < t.min_foreign_write_pct else "")
        return True, (f"other writers {foreign:.1f} of {device:.1f} MB/s on {dev} ({pct:.0f}%, held against the host "
                      f"from {t.min_foreign_write_pct:g}%; the stack and harness {own:.1f}{few}{hidden})")
    return False, (f"the stack's and harness's own writes were {own:.1f} of {device:.1f} MB/s on {dev}{hidden}: not "
                   "the host")


def _fsync_before(figures: HostFigures, demand: Demand, t: Thresholds) -> tuple[Shortfall | None, str | None]:
    """The preflight's saves/s against the profile's need: a shortfall when the host is to blame, else context."""
    need = demand.fsync_per_s * t.fsync_margin
    if figures.fsync_per_s is None or figures.fsync_per_s >= need:
        return None, None
    text = (f"{figures.disk_label} did {figures.fsync_per_s:.0f} fsync/s (p50 {figures.fsync_p50_ms:.1f} ms), the "
            f"profile needs ≥ {need:.0f}/s ({demand.fsync_arithmetic})")
    host, words = _whose_writes(figures, t)
    if host:
        return Shortfall("fsync", "before", figures.fsync_per_s, need, f"{text}; {words}" if words else text), None
    return None, f"before the run {text}, but {words}"


def _shim(summary: MonitorSummary) -> str:
    """The slow-fsync shim a run's saves went through, in words, or nothing."""
    return f" (slow-fsync shim: {summary.slow_fsync_ms:g} ms per fsync)" if summary.slow_fsync_ms else ""


def _fsync_during(summary: MonitorSummary, t: Thresholds) -> tuple[Shortfall | None, str | None]:
    """The run's save probe against its bound: a shortfall when the host is to blame, else context. Unattributed, the
    probe competes with the broker's own saves unseen, hence the looser bound than the preflight's."""
    p50, bound = summary.fsync_p50_ms, t.max_fsync_p50_ms_during
    if p50 is None or p50 <= bound:
        return None, None
    text = (f"a save in the broker's directory{_shim(summary)} took {p50:.1f} ms (p50) during the run, worst "
            f"{summary.fsync_worst_ms:.0f} ms (bound ≤ {bound:g} ms")
    host, words = _whose_writes(summary, t)
    if not host:
        return None, f"{text}), but {words}"
    words = words or "I/O not attributed: the broker's own saves queue ahead of it"
    return Shortfall("fsync", "during", p50, bound, f"{text}; {words})"), None


def _stall_during(summary: MonitorSummary, t: Thresholds) -> tuple[Shortfall | None, str | None]:
    """One save far slower than the rest: the disk stalled. Held against the host when the median save stayed within
    its bound: a stack that loads the disk slows its saves across the run (judged by `_fsync_during`), while a
    stall of one save, with the others at their usual speed, is the device's. The broker is single-threaded, so
    while a save hangs it answers nothing and every reading in flight takes the stall into the tail.
    Whose writes filled the disk is asked as for a slow save (`_whose_writes`): a stall under the stack's own burst
    (a broker rewriting a grown database, PostgreSQL's recovery) is the stack's, said as context, never blamed."""
    worst, p50 = summary.fsync_worst_ms, summary.fsync_p50_ms
    if worst is None or p50 is None or worst <= t.max_save_stall_ms or p50 > t.max_fsync_p50_ms_during:
        return None, None
    text = (f"the broker's disk{_shim(summary)} stalled: one save in its directory took {worst:.0f} ms during the run "
            f"(bound ≤ {t.max_save_stall_ms:g} ms) while the median save took {p50:.1f} ms")
    host, words = _whose_writes(summary, t)
    if not host:
        return None, f"{text}, but {words}"
    return Shortfall("stall", "during", worst, t.max_save_stall_ms,
                     f"{text}, so the stack's own saves did not slow it; the broker answers nothing while a save "
                     "hangs" + (f"; {words}" if words else "")), None


def context(figures: HostFigures | None, summary: MonitorSummary | None, demand: Demand,
            thresholds: Thresholds | None = None) -> list[str]:
    """What fell short but is not the host's (a slow save under the stack's own writes): said, never blamed."""
    t = thresholds or Thresholds()
    found = [_fsync_before(figures, demand, t)[1] if figures else None,
             _fsync_during(summary, t)[1] if summary and summary.samples else None,
             _stall_during(summary, t)[1] if summary and summary.samples else None]
    return [c for c in found if c]


def assess(figures: HostFigures, demand: Demand, thresholds: Thresholds | None = None) -> list[Shortfall]:
    """Every way the host, as measured before a run, cannot carry `demand`; empty when it can. A slow disk is the
    host's only when foreign writes made a meaningful part of the device's (or I/O was not attributed)."""
    t = thresholds or Thresholds()
    out: list[Shortfall] = []
    if (disk := _fsync_before(figures, demand, t)[0]) is not None:
        out.append(disk)
    gen_need = demand.peak_rate * t.generator_headroom
    if figures.generator_per_s < gen_need:
        out.append(Shortfall("generator", "before", figures.generator_per_s, gen_need,
                             f"one core built {figures.generator_per_s:.0f} readings/s, the generator needs ≥ "
                             f"{gen_need:.0f}/s ({t.generator_headroom:g} × the peak {demand.peak_rate:g}/s)"))
    if figures.usable_cores < t.min_cores:
        out.append(Shortfall("cores", "before", figures.usable_cores, t.min_cores,
                             f"{figures.usable_cores:g} usable cores (needs ≥ {t.min_cores:g})"))
    if figures.foreign_cores is not None:
        out += _foreign("before", figures.cores, figures.foreign_cores, figures.own_cores or 0.0,
                        figures.steal_cores or 0.0, figures.top_foreign, figures.psi_cpu_some_avg10, t)
    else:
        out += _pressure_or_load("before", figures.psi_cpu_some_avg10, figures.psi_io_some_avg10,
                                 figures.loadavg[0] / max(figures.usable_cores, 1), t, "avg10")
    return out


def assess_run(summary: MonitorSummary, demand: Demand, thresholds: Thresholds | None = None) -> list[Shortfall]:
    """Every way the host fell short during a run. Means are judged (a one-second spike is reported, not blamed).
    Where our trees are known, CPU is judged on foreign work only, and a slow save probe on the share of the disk's
    writes that was foreign (`_whose_writes`)."""
    t = thresholds or Thresholds()
    if not summary.samples:
        return []
    if summary.cpu_attributed and summary.foreign_cores_mean is not None:
        out = _foreign("during", summary.cores, summary.foreign_cores_mean, summary.own_cores_mean or 0.0,
                       summary.steal_cores_mean or 0.0, summary.top_foreign, summary.cpu_pressure_mean, t,
                       summary.foreign_cores_worst)
    else:
        out = _pressure_or_load("during", summary.cpu_pressure_mean, summary.io_pressure_mean,
                                summary.load_per_core_mean, t, "mean",
                                {"cpu": summary.cpu_pressure_worst, "io": summary.io_pressure_worst})
    if (disk := _fsync_during(summary, t)[0]) is not None:
        out.append(disk)
    if (stall := _stall_during(summary, t)[0]) is not None:
        out.append(stall)
    return out


class EnvironmentVerdict(AssertionError):
    """A failed claim the host, not the stack, is to blame for: the figures and shortfalls travel with it.

    An AssertionError, not an IndMLOpsError: it is still a test that did not show its claim (pytest counts it
    failed, `pytest.raises(AssertionError)` in the sensitivity tests still catches it), while IndMLOpsError means
    "the harness could not do its work" and is printed by the CLI as an error."""

    def __init__(self, demand: Demand, shortfalls: list[Shortfall], *, breach_text: str = "",
                 figures: HostFigures | None = None, monitor: MonitorSummary | None = None,
                 figures_path: Path | str | None = None, context: list[str] | None = None) -> None:
        self.demand, self.shortfalls, self.breach_text = demand, shortfalls, breach_text
        self.figures, self.monitor, self.figures_path = figures, monitor, figures_path
        self.context = context or []
        where = f" Figures: {figures_path}" if figures_path else ""
        before = [s.text for s in shortfalls if s.when == "before"]
        during = [s.text for s in shortfalls if s.when == "during"]
        parts = "; ".join(before + (["during the run: " + "; ".join(during)] if during else []))
        parts += "".join(f" (not held against the host: {c})" for c in self.context)
        text = (f"environment, not the stack: the host could not carry profile {demand.profile}: {parts}."
                f"{disk_note(figures, monitor)}{where}")
        if breach_text:
            text += f"\n\nWhat the suite saw (not held against the stack):\n{breach_text}"
        super().__init__(text)

    def __reduce__(self):  # picklable (xdist, multiprocessing) despite the keyword-only constructor
        return (_rebuild_verdict, (self.args[0],))


def disk_note(figures: HostFigures | None, monitor: MonitorSummary | None) -> str:
    """" Disk: …" naming a deliberate slow disk with its figures, for any verdict that blames the environment (a
    shortfall of CPU too: the disk it ran on is part of the environment judged); "" without the shim."""
    ms = (figures.slow_fsync_ms if figures else 0.0) or (monitor.slow_fsync_ms if monitor else 0.0)
    if not ms:
        return ""
    seen = []
    if figures is not None and figures.fsync_per_s is not None:
        seen.append(f"before the run {figures.fsync_per_s:.0f} fsync/s, p50 {figures.fsync_p50_ms:.2f} ms")
    if monitor is not None and monitor.fsync_p50_ms is not None:
        seen.append(f"during it a save p50 {monitor.fsync_p50_ms:.2f} ms")
    return f" Disk: slow-fsync shim: {ms:g} ms per fsync" + (f" ({'; '.join(seen)})" if seen else "") + "."


def _rebuild_verdict(text: str) -> AssertionError:
    exc = EnvironmentVerdict.__new__(EnvironmentVerdict)
    AssertionError.__init__(exc, text)
    return exc


def with_context(exc: AssertionError, said: list[str]) -> AssertionError:
    """The stack's failure, as it is (pytest's diff intact), with a note per slow-but-ours finding."""
    for line in said:
        exc.add_note(f"host: {line}")
    return exc
