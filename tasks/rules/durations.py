"""Durations as people write them in inventories and fleet files ("90s", "20m", "24h", "8d", "1h30m")."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Numbers without a unit are seconds; everything else needs a unit so "24" is never ambiguous in YAML."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("duration must be like 90s, 20m, 24h or 8d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("duration must not be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"duration must be like 90s, 20m, 24h or 8d, got {type(value).__name__}")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"duration {value!r} is not like 90s, 20m, 24h, 8d or 1h30m")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    if delta.total_seconds() != seconds:
        return f"{int(delta.total_seconds() * 1000)}ms"
    return f"{seconds}s"


_PER_WORDS = {"s": "1s", "sec": "1s", "second": "1s", "m": "1m", "min": "1m", "minute": "1m", "h": "1h",
              "hour": "1h", "d": "1d", "day": "1d", "w": "1w", "week": "1w"}


class Rate:
    """So many per period, as people write them: ``6/day``, ``20/min``, ``3000/h``, ``2/20s``.

    Technicians' visits per location and the provisioning server's throughput are rates."""

    __slots__ = ("count", "per")

    def __init__(self, count: float, per: timedelta):
        if count <= 0 or per.total_seconds() <= 0:
            raise ValueError("a rate is a positive count per positive period, like 6/day or 20/min")
        self.count, self.per = float(count), per

    @property
    def interval(self) -> timedelta:
        """Time between two events at this rate (a day / 6 for 6/day)."""
        return self.per / self.count

    @property
    def per_second(self) -> float:
        return self.count / self.per.total_seconds()

    def plus(self, more: float) -> "Rate":
        return Rate(self.count + more, self.per)

    def __eq__(self, other) -> bool:
        return isinstance(other, Rate) and abs(self.per_second - other.per_second) < 1e-12

    def __hash__(self) -> int:
        return hash(round(self.per_second, 12))

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        period = format_duration(self.per)
        words = {"1d": "day", "1h": "h", "1m": "min", "1s": "s", "1w": "week"}
        return f"{count}/{words.get(period, period)}"

    __repr__ = __str__


def parse_rate(value: "str | int | float | Rate") -> Rate:
    """``6/day``, ``20/min``, ``3000/h``, ``2/20s``; a bare number is per day (``6`` = 6/day)."""
    if isinstance(value, Rate):
        return value
    if isinstance(value, bool):
        raise ValueError("a rate is like 6/day, 20/min or 2/20s")
    if isinstance(value, (int, float)):
        return Rate(value, timedelta(days=1))
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"rate {value!r} is not like 6/day, 20/min, 3000/h or 2/20s")
    count, _, per = value.strip().partition("/")
    try:
        n = float(count.strip())
    except ValueError:
        raise ValueError(f"rate {value!r}: {count.strip()!r} is not a number") from None
    per = per.strip().lower()
    return Rate(n, parse_duration(_PER_WORDS.get(per, per)))
