"""Machine signals, fault episodes and readings: pure, deterministic for a seed, no I/O.

Each machine is sampled every `period_s` of *simulated* time. Its signals follow a daily ambient cycle, an
hourly duty cycle (load) and slow wear over a 30-day life, with Gaussian sensor noise. Fault episodes are
drawn per machine from a seeded schedule; while one is active it shapes the signals and labels the reading.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

SCHEMA_VERSION = 1
SIGNALS = ("temperature_c", "vibration_rms_mm_s", "spindle_current_a", "pressure_bar")
FAULT_MODES = ("bearing_wear", "overheating", "stuck_sensor", "dropout", "spike")
# Dropout suppresses the reading (the sequence number still advances, so receivers see the gap): no label.
LABELS = ("normal", "bearing_wear", "overheating", "stuck_sensor", "spike")

DAY_S = 86_400.0
LIFETIME_S = 30 * DAY_S
# Episode lengths in simulated seconds (min, max); a spike lasts one sample.
DURATION_S = {"bearing_wear": (600.0, 1800.0), "overheating": (300.0, 900.0), "stuck_sensor": (120.0, 600.0),
              "dropout": (10.0, 60.0), "spike": (0.0, 0.0)}
NOISE_SD = {"temperature_c": 0.5, "vibration_rms_mm_s": 0.1, "spindle_current_a": 0.3, "pressure_bar": 0.05}


@dataclass(frozen=True)
class Episode:
    mode: str
    start: float
    end: float
    signal: str | None = None  # the affected signal for stuck_sensor and spike

    def active(self, t: float, period: float) -> bool:
        if self.mode == "spike":
            return self.start <= t < self.start + period
        return self.start <= t < self.end

    def affected(self) -> str:
        """The signal a stuck_sensor or spike episode acts on."""
        if self.signal is None:
            raise ValueError(f"{self.mode} episode at {self.start} s names no signal")
        return self.signal


def fault_schedule(seed: int, line: str, machine: str, horizon_s: float, *, mean_gap_s: float = 1800.0,
                   start_s: float = 0.0) -> list[Episode]:
    """Non-overlapping fault episodes in [start_s, start_s + horizon_s), seeded per machine.

    Gaps between episodes are exponential with mean `mean_gap_s` (a Poisson process of faults).
    """
    if mean_gap_s <= 0:
        raise ValueError(f"mean_gap_s must be positive, got {mean_gap_s}")
    rng = random.Random(f"{seed}/{line}/{machine}/faults")
    episodes: list[Episode] = []
    t = start_s + rng.expovariate(1.0 / mean_gap_s)
    while t < start_s + horizon_s:
        mode = rng.choice(FAULT_MODES)
        lo, hi = DURATION_S[mode]
        end = t + rng.uniform(lo, hi)
        signal = rng.choice(SIGNALS) if mode in ("stuck_sensor", "spike") else None
        episodes.append(Episode(mode, t, end, signal))
        t = end + rng.expovariate(1.0 / mean_gap_s)
    return episodes


class Machine:
    """One machine's signal generator; `next()` returns the features and label of its next sample, or None."""

    def __init__(self, seed: int, line: str, machine: str, *, period_s: float, start_s: float,
                 horizon_s: float, mean_gap_s: float) -> None:
        self.line, self.machine = line, machine
        self.period = period_s
        self.t = start_s
        self.seq = 0
        self.noise = random.Random(f"{seed}/{line}/{machine}/noise")
        self.ids = random.Random(f"{seed}/{line}/{machine}/ids")
        self.phase = self.noise.uniform(0, 2 * math.pi)
        self.episodes = fault_schedule(seed, line, machine, horizon_s, mean_gap_s=mean_gap_s, start_s=start_s)
        self._ep_index = 0
        self._frozen: float | None = None

    def _episode(self, t: float) -> Episode | None:
        while self._ep_index < len(self.episodes) and self.episodes[self._ep_index].end < t and \
                not self.episodes[self._ep_index].active(t, self.period):
            self._ep_index += 1
            self._frozen = None
        if self._ep_index < len(self.episodes):
            ep = self.episodes[self._ep_index]
            if ep.active(t, self.period):
                return ep
        return None

    def step(self) -> tuple[int, float, dict[str, float] | None, str]:
        """Advance one sample: (seq, simulated time, features or None on dropout, label)."""
        t, g = self.t, self.noise.gauss
        self.seq += 1
        self.t += self.period
        daily = math.sin(2 * math.pi * (t % DAY_S) / DAY_S)
        load = 0.6 + 0.3 * math.sin(2 * math.pi * t / 3600.0 + self.phase)
        wear = min(1.0, t / LIFETIME_S)
        f = {
            "temperature_c": 22.0 + 4.0 * daily + 30.0 * load + 5.0 * wear + g(0, NOISE_SD["temperature_c"]),
            "vibration_rms_mm_s": 1.5 + 1.0 * load + 2.0 * wear * wear + g(0, NOISE_SD["vibration_rms_mm_s"]),
            "spindle_current_a": 8.0 + 10.0 * load + g(0, NOISE_SD["spindle_current_a"]),
            "pressure_bar": 6.0 + 0.2 * load + g(0, NOISE_SD["pressure_bar"]),
        }
        ep = self._episode(t)
        if ep is None:
            return self.seq, t, f, "normal"
        p = (t - ep.start) / max(ep.end - ep.start, self.period)
        if ep.mode == "dropout":
            return self.seq, t, None, "dropout"
        if ep.mode == "bearing_wear":
            f["vibration_rms_mm_s"] += 4.0 * p + g(0, 0.3) * p
            f["temperature_c"] += 3.0 * p
        elif ep.mode == "overheating":
            f["temperature_c"] += 8.0 + 20.0 * p
            f["spindle_current_a"] += 2.0 * p
        elif ep.mode == "stuck_sensor":
            signal = ep.affected()
            if self._frozen is None:
                self._frozen = f[signal]
            f[signal] = self._frozen
        elif ep.mode == "spike":
            # A spike is 12 noise standard deviations plus 30 % of the value: unmistakable, one sample long.
            signal = ep.affected()
            f[signal] += 12 * NOISE_SD[signal] + 0.3 * abs(f[signal])
        return self.seq, t, f, ep.mode

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))


class Plant:
    """N lines × M machines, sampled round-robin; `readings()` yields message dicts deterministically."""

    def __init__(self, *, seed: int = 0, lines: int = 1, machines: int = 4, period_s: float = 1.0,
                 start_s: float = 0.0, horizon_s: float = 7 * DAY_S, mean_gap_s: float = 1800.0,
                 start_ns: int = 1_800_000_000_000_000_000) -> None:
        if lines < 1 or machines < 1:
            raise ValueError(f"need at least one line and one machine, got lines={lines} machines={machines}")
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.seed = seed
        self.start_ns = start_ns
        self.machines = [
            Machine(seed, f"line-{li + 1}", f"m-{mi + 1:02d}", period_s=period_s, start_s=start_s,
                    horizon_s=horizon_s, mean_gap_s=mean_gap_s)
            for li in range(lines) for mi in range(machines)
        ]

    def topics(self) -> list[str]:
        return [f"factory/{m.line}/{m.machine}/telemetry" for m in self.machines]

    def readings(self, include_dropouts: bool = False) -> Iterator[dict]:
        """Endless readings, machine by machine in turn. Dropouts are skipped unless asked for."""
        while True:
            for m in self.machines:
                seq, t, features, label = m.step()
                if features is None and not include_dropouts:
                    continue
                yield {
                    "schema": SCHEMA_VERSION,
                    "id": m.new_id(),
                    "line": m.line,
                    "machine": m.machine,
                    "seq": seq,
                    "ts_ns": self.start_ns + int(t * 1e9),
                    "features": features,
                    "label": label,
                }
