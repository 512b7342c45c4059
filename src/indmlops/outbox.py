"""Store-and-forward for the OT plane's publishers: a reading stays in the outbox until its prediction confirms it.

Why: the broker saves its database on a timer (indmlops.broker), so a SIGKILL can take what it acknowledged since
the last save, readings and predictions alike. The publisher still has them, and re-sends what the edge never
answered; the edge is idempotent (it answers a reading it has seen again with the same prediction), so a re-send
costs one message and changes no result. Nothing here grows with the backlog: a confirmation and a transmission are
O(1), and `due()` looks only at readings already shown missing.

When is a reading missing, and not merely waiting in a queue? The broker hands one subscriber's messages over in
the order they were published, and the edge answers them in that order; so once the prediction of a reading sent
*later* arrives, an earlier one without a prediction was lost (by the broker, or its prediction was). It is
re-sent after `gap_grace_s` (a moment for a prediction still on its way). Two more rules cover what order cannot
show:

- probe: nothing confirmed for `probe_after_s` while readings wait (the edge away, or the tail of a run whose last
  readings the broker lost): the oldest waiting reading is sent again, with the wait doubling up to
  `probe_max_s`. A probe during an outage costs one message per wait, not the backlog.
- resends: a reading shown missing again after `max_resends` re-sends (one the edge dead-letters, say) is given
  up and counted, never retried forever.

Order is judged by the first transmission of each reading, which only makes a gap appear later, never falsely: a
reading whose first copy went out before a confirmed reading's first copy was due before it.
Pure and clock-injected (the chaos traffic's threads and the simulator share it); callers hold their own lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class Entry:
    first_tx: int  # order of the first transmission: what a confirmation of this reading proves
    order_tx: int  # order of the last transmission: after it, a later reading's confirmation shows this one missing
    sent_at: float  # last transmission
    resends: int = 0  # gap re-sends (probes are not counted: they only ask whether anyone is there)
    payload: object = None  # what to send again (the caller's: topic and body, say)
    missing_since: float | None = None  # when a later reading's confirmation showed it missing


@dataclass
class OutboxStats:
    pending: int = 0
    max_pending: int = 0
    confirmed: int = 0
    resent_gap: int = 0  # re-sent because a later reading was confirmed first: the broker lost it or its prediction
    resent_probe: int = 0  # re-sent because nothing was confirmed for a while
    given_up: int = 0
    given_up_examples: list[str] = field(default_factory=list)
    overflowed: int = 0  # the oldest readings dropped unconfirmed because the outbox was full (capacity)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Outbox:
    def __init__(self, *, gap_grace_s: float = 2.0, probe_after_s: float = 10.0, probe_max_s: float = 60.0,
                 max_resends: int = 6, capacity: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gap_grace_s, self.probe_after_s, self.probe_max_s = gap_grace_s, probe_after_s, probe_max_s
        self.max_resends = max_resends
        self.capacity = capacity  # None: unbounded (a run of known length); a long-running publisher sets one
        self._clock = clock
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()  # by first transmission: oldest first
        self._tx = 0
        self._confirmed_tx = 0  # the largest first_tx confirmed so far: everything before it is due
        self._last_confirmed_at = clock()
        self._probe_wait = probe_after_s
        self._last_probe_at = 0.0
        self.stats = OutboxStats()

    def __len__(self) -> int:
        return len(self._entries)

    def sent(self, key: Hashable, payload: object = None) -> None:
        """A reading's first transmission (a re-send is recorded by `due()`, which hands it out)."""
        if key in self._entries:
            return
        if self.capacity is not None and len(self._entries) >= self.capacity:
            self._entries.popitem(last=False)  # the oldest: a plant keeps the present before the distant past
            self.stats.overflowed += 1
        self._tx += 1
        self._entries[key] = Entry(self._tx, self._tx, self._clock(), payload=payload)
        self.stats.pending = len(self._entries)
        self.stats.max_pending = max(self.stats.max_pending, self.stats.pending)

    def confirmed(self, key: Hashable) -> bool:
        """The reading's prediction arrived; False when it was not waiting (a second copy, someone else's)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        now = self._clock()
        # Which copy was answered is not known: the first one proves the least, so it is the one assumed.
        self._confirmed_tx = max(self._confirmed_tx, entry.first_tx)
        self._last_confirmed_at = now
        self._probe_wait = self.probe_after_s
        self.stats.confirmed += 1
        self.stats.pending = len(self._entries)
        return True

    def due(self) -> list[tuple[Hashable, object, str]]:
        """(key, payload, reason) of the readings to send again now; reason is "gap" or "probe". The caller sends
        each (a send that fails is retried by the next rules, as if the copy were lost)."""
        now = self._clock()
        gaps: list[Hashable] = []
        for key, entry in self._entries.items():  # by order_tx: oldest transmission first
            if entry.order_tx >= self._confirmed_tx:
                break  # nothing from here on is shown missing
            if entry.missing_since is None:
                entry.missing_since = now
            if now - entry.missing_since >= self.gap_grace_s:
                gaps.append(key)
        out: list[tuple[Hashable, object, str]] = []
        for key in gaps:
            entry = self._entries[key]
            if entry.resends >= self.max_resends:
                del self._entries[key]
                self.stats.given_up += 1
                if len(self.stats.given_up_examples) < 10:
                    self.stats.given_up_examples.append(str(key))
                continue
            entry.resends += 1
            self.stats.resent_gap += 1
            out.append((key, entry.payload, "gap"))
            self._retransmitted(key, entry, now)
        if not out and self._entries and now - max(self._last_confirmed_at, self._last_probe_at) >= self._probe_wait:
            key, entry = next(iter(self._entries.items()))
            self._last_probe_at = now
            self._probe_wait = min(self._probe_wait * 2, self.probe_max_s)
            self.stats.resent_probe += 1
            out.append((key, entry.payload, "probe"))
            self._retransmitted(key, entry, now)
        self.stats.pending = len(self._entries)
        return out

    def _retransmitted(self, key: Hashable, entry: Entry, now: float) -> None:
        self._tx += 1
        entry.order_tx, entry.sent_at, entry.missing_since = self._tx, now, None
        self._entries.move_to_end(key)
