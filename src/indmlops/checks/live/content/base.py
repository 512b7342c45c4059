"""What one writer put into the system, and how a check tells it is all still there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Content:
    """What one writer put into the system, and how to check it is all still there."""

    kind: str
    items: int
    bytes: int
    where: str
    verify: Callable[[], int]  # returns the number of items verified; raises AssertionError naming what is lost
    cleanup: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)


class Unreadable(AssertionError):
    """The store answered a read with an error of its own (a 5xx, a refused connection, "starting up"), neither the
    content nor its absence: nothing is proven kept or lost yet, and reading again may tell."""


def _lost(kind: str, where: str, lost: list, changed: list, total: int, hint: str = "") -> None:
    if lost or changed:
        raise AssertionError(f"{kind} at {where}: {len(lost)} of {total} missing {lost[:8]}, {len(changed)} "
                             f"changed {changed[:8]}" + (f"; {hint}" if hint else ""))
