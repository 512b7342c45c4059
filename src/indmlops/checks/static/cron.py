"""A CronJob schedule as the API server parses it (robfig/cron's standard parser: five fields or a descriptor)."""

from __future__ import annotations

import re
from typing import Any

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (field, lowest, highest, names of the values from the lowest on)
FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()), ("month", 1, 12, MONTHS),
          ("day of week", 0, 6, DAYS))
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
FORMAT = "'minute hour day-of-month month day-of-week' (e.g. '*/15 * * * *') or a descriptor such as @hourly"


def _value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.lower() in names:
        return low + names.index(text.lower())
    return int(text) if text.isdigit() else None


def _field_problem(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    for part in text.split(","):
        span, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            return f"{name} {part!r}: the step must be a number above 0"
        if span in ("*", "?"):
            continue
        first, dash, last = span.partition("-")
        start = _value(first, low, names)
        end = _value(last, low, names) if dash else (high if slash else start)
        if start is None or end is None:
            return f"{name} {part!r} is not a number{' or name' if names else ''}"
        if start < low or end > high:
            return f"{name} {part!r} is outside {low}-{high}"
        if start > end:
            return f"{name} {part!r}: the range begins after it ends"
    return None


def schedule_problem(schedule: str, time_zone: Any = None) -> str | None:
    """Why the API rejects `schedule` (a phrase to follow the value), or None when it parses."""
    text = schedule.strip()
    if "TZ" in text:
        return ("sets TZ or CRON_TZ; the API rejects that in the schedule" +
                (" next to the timeZone field" if time_zone else ": use the timeZone field"))
    if text.startswith("@"):
        if text in DESCRIPTORS:
            return None
        every, _, duration = text.partition(" ")
        if every == "@every" and _DURATION.match(duration.strip()):
            return None
        return f"is not a descriptor the API knows ({', '.join(DESCRIPTORS)}, @every <duration>)"
    fields = text.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; the API expects {FORMAT}"
    for part, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        if problem := _field_problem(part, name, low, high, names):
            return f"does not parse: {problem}; the API expects {FORMAT}"
    return None
