"""Per-reading accounting of an MQTT run, so a verdict can tell late from lost, and lost from "could not tell".

A reading is published on a stream (its line/machine topic) with a sequence number, acknowledged by the broker
(PUBACK), and predicted when its prediction reaches our subscriber. After the load stops, `drain` waits while
predictions keep coming, and `account` then sorts every acknowledged reading into one of:

- on time:   predicted within `late_after_s` of being published;
- late:      predicted, but later than that (reported with the delay distribution);
- lost:      never predicted, although a reading published *after* it on the same stream was. The broker hands a
             subscriber's messages over in order, and the edge handles them in order, so once a later reading's
             prediction arrived this one's never will: it is gone, not late;
- undrained: never predicted, and nothing after it on its stream was either: the run ended (drain bound, or no
             progress) before the system got there. That is not evidence of loss; the drain record says why it
             stopped (the edge stalled, or it was still draining at N/s when the bound ran out).

Readings the broker never acknowledged are not the edge's responsibility (QoS1 promises nothing for them) and
are counted apart. A reading still in flight (published, neither acknowledged nor predicted nor given up by its
publisher) is outstanding too: the drain waits for its acknowledgement, because a PUBACK that arrives after the drain
would turn a "complete" drain into an undrained reading. When the drain ends the ledger is closed: what arrives
later is counted in `after_close` and changes no verdict, so the drain's word and the accounting always agree.
Pure and clock-injected: the chaos traffic (threads) and the Locust matcher (gevent) share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from indmlops.slo import percentile

Key = tuple[str, int]  # (stream, seq): the stream is "line/machine"


@dataclass
class Drain:
    """How the wait for outstanding predictions ended."""

    seconds: float
    outstanding_before: int
    outstanding_after: int  # acknowledged without a prediction, or still awaiting the broker's acknowledgement
    stopped: str  # "complete" | "no progress" | "bound"
    detail: str


@dataclass
class Accounting:
    published: int
    acknowledged: int
    unacknowledged: int  # published, not acknowledged by the broker when the ledger closed: outside QoS1's promise
    predicted: int  # distinct readings with a prediction (acknowledged or not)
    on_time: int
    late: int
    lost: int
    undrained: int
    duplicates: int  # readings predicted more than once
    late_after_s: float
    late_delay_s: dict[str, float] = field(default_factory=dict)  # p50, p99, max of the late readings' delays
    lost_examples: list[str] = field(default_factory=list)
    undrained_examples: list[str] = field(default_factory=list)
    duplicate_examples: list[str] = field(default_factory=list)
    drain: Drain | None = None
    after_close: int = 0  # acknowledgements and predictions that arrived after the drain closed the ledger

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        late = ""
        if self.late:
            d = self.late_delay_s
            late = (f", {self.late} late (> {self.late_after_s:g} s; delay p50 {d['p50']:.1f} s, p99 {d['p99']:.1f} s, "
                    f"max {d['max']:.1f} s)")
        text = (f"{self.acknowledged} acknowledged of {self.published} published: {self.on_time} predicted on time"
                f"{late}, {self.lost} lost, {self.undrained} undrained; {self.duplicates} predicted twice; "
                f"{self.unacknowledged} not acknowledged by the broker")
        if self.lost_examples:
            text += f"; lost e.g. {', '.join(self.lost_examples)}"
        if self.undrained_examples:
            text += f"; undrained e.g. {', '.join(self.undrained_examples)}"
        if self.drain is not None:
            text += f"; drain: {self.drain.detail}"
        if self.after_close:
            text += f"; {self.after_close} acknowledgements or predictions arrived after the drain ended (not counted)"
        return text


def _outstanding(unpredicted: int, in_flight: int) -> str:
    text = f"{unpredicted + in_flight} outstanding"
    if in_flight:
        text += f" ({unpredicted} acknowledged without a prediction, {in_flight} awaiting the broker's acknowledgement)"
    return text


def _no_progress(unpredicted: int, in_flight: int, quiet_s: float) -> str:
    if not in_flight:
        return (f"no prediction of the {unpredicted} outstanding readings for {quiet_s:g} s: the edge stopped "
                f"handling them")
    if not unpredicted:
        return (f"no acknowledgement of the {in_flight} readings in flight for {quiet_s:g} s: the broker stopped "
                f"acknowledging them")
    return (f"no prediction or acknowledgement for {quiet_s:g} s ({_outstanding(unpredicted, in_flight)}): the edge "
            f"and the broker stopped handling them")


class Ledger:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.published_at: dict[Key, float] = {}
        self.acked: set[Key] = set()
        self.predicted_at: dict[Key, float] = {}  # first prediction's arrival
        self.predictions: dict[Key, int] = {}  # distinct predictions per reading (redeliveries of one excluded)
        self.messages = 0  # prediction messages received, redeliveries included
        self.closed = False
        self.after_close = 0
        self._newest_predicted: dict[str, int] = {}  # stream → highest seq predicted
        self._unpredicted: set[Key] = set()  # acknowledged, no prediction yet
        self._in_flight: set[Key] = set()  # published; not acknowledged, predicted or abandoned yet

    def published(self, stream: str, seq: int, at: float | None = None) -> Key:
        key = (stream, seq)
        with self._lock:
            self.published_at[key] = self._clock() if at is None else at
            self._in_flight.add(key)
        return key

    def acknowledged(self, key: Key) -> None:
        with self._lock:
            if self.closed:
                self.after_close += 1
                return
            self.acked.add(key)
            self._in_flight.discard(key)
            if key not in self.predicted_at:
                self._unpredicted.add(key)

    def abandoned(self, key: Key) -> None:
        """The publisher gave up waiting for this reading's acknowledgement and will not report one: the drain stops
        waiting for it (it is counted unacknowledged unless predicted)."""
        with self._lock:
            self._in_flight.discard(key)

    def predicted(self, stream: str, seq: int, *, distinct: bool = True, at: float | None = None) -> bool:
        """Record a prediction; `distinct` False for a redelivery of a message already counted. True when the reading
        is one of ours (published through this ledger)."""
        key = (stream, seq)
        now = self._clock() if at is None else at
        with self._lock:
            if key not in self.published_at:
                return False
            if self.closed:
                self.after_close += 1
                return True
            self.messages += 1
            self.predicted_at.setdefault(key, now)
            self._unpredicted.discard(key)
            self._in_flight.discard(key)
            if distinct:
                self.predictions[key] = self.predictions.get(key, 0) + 1
            if seq > self._newest_predicted.get(stream, -1):
                self._newest_predicted[stream] = seq
        return True

    def pending(self) -> tuple[int, int]:
        """(acknowledged without a prediction, in flight: published, not acknowledged, predicted or abandoned)."""
        with self._lock:
            return self._pending()

    def _pending(self) -> tuple[int, int]:  # under self._lock
        return len(self._unpredicted), len(self._in_flight)

    def _events(self) -> int:  # under self._lock: acknowledgements and prediction messages, the drain's progress
        return len(self.acked) + self.messages

    def drain(self, *, bound_s: float, quiet_s: float, progress: Callable[[str], None] | None = None,
              sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
              every_s: float = 2.0) -> Drain:
        """Wait until every published reading is predicted or settled unacknowledged (abandoned), nothing (no
        acknowledgement, no prediction) has come for `quiet_s`, or `bound_s` passed; report progress every `every_s` s.
        Then close the ledger, so the accounting describes the state the drain ended on."""
        t0 = last_change = last_report = monotonic()
        with self._lock:
            before, events = sum(self._pending()), self._events()
        count_at_report = self.messages
        while True:
            with self._lock:  # the state judged and the ledger's closing are one snapshot: no event slips between
                unpredicted, in_flight = self._pending()
                left, now = unpredicted + in_flight, monotonic()
                if self._events() != events:
                    events, last_change = self._events(), now
                stopped = ""
                if left == 0:
                    stopped, detail = "complete", "every acknowledged reading predicted"
                elif now - last_change >= quiet_s:
                    stopped, detail = "no progress", _no_progress(unpredicted, in_flight, quiet_s)
                elif now - t0 >= bound_s:
                    rate = (before - left) / (now - t0) if now > t0 else 0.0
                    stopped, detail = "bound", (f"still draining at {rate:.0f} predictions/s when the {bound_s:g} s "
                                                f"bound ran out ({_outstanding(unpredicted, in_flight)})")
                self.closed = bool(stopped)
            if stopped:
                break
            if progress and now - last_report >= every_s:
                rate = (self.messages - count_at_report) / (now - last_report)
                progress(f"draining: {_outstanding(unpredicted, in_flight)} of {before}, "
                         f"{rate:.0f} predictions/s, {now - t0:.0f} s of at most {bound_s:g} s")
                last_report, count_at_report = now, self.messages
            sleep(0.05)
        seconds = monotonic() - t0
        result = Drain(round(seconds, 2), before, left, stopped, f"{detail} (after {seconds:.1f} s)")
        if progress:
            progress(f"drain {stopped}: {result.detail}")
        return result

    def account(self, late_after_s: float, drain: Drain | None = None, examples: int = 10) -> Accounting:
        with self._lock:
            published_at, acked = dict(self.published_at), set(self.acked)
            predicted_at, predictions = dict(self.predicted_at), dict(self.predictions)
            newest = dict(self._newest_predicted)
            after_close = self.after_close
        late_delays = [predicted_at[k] - published_at[k] for k in predicted_at
                       if predicted_at[k] - published_at[k] > late_after_s]
        missing = sorted(k for k in acked if k not in predicted_at)
        lost = [k for k in missing if newest.get(k[0], -1) > k[1]]
        undrained = [k for k in missing if newest.get(k[0], -1) < k[1]]
        dup = sorted(k for k, n in predictions.items() if n > 1)
        show = lambda keys: [f"{s}#{q}" for s, q in keys[:examples]]
        return Accounting(
            published=len(published_at), acknowledged=len(acked),
            unacknowledged=len(published_at.keys() - acked), predicted=len(predicted_at),
            on_time=len(predicted_at) - len(late_delays), late=len(late_delays), lost=len(lost),
            undrained=len(undrained), duplicates=len(dup), late_after_s=late_after_s,
            late_delay_s={"p50": percentile(late_delays, 50), "p99": percentile(late_delays, 99),
                          "max": max(late_delays)} if late_delays else {},
            lost_examples=show(lost), undrained_examples=show(undrained), duplicate_examples=show(dup), drain=drain,
            after_close=after_close)
