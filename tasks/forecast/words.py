"""Times and durations as a lead reads them: `2026-12-03 14:00 UTC`, `+1 d 4 h`, `24 h`."""

from __future__ import annotations

from datetime import datetime, timezone


def span(seconds: float | None) -> str:
    """8 d / 1 d 4 h / 3 h 12 min / 45 min / 20 s."""
    if seconds is None:
        return "never"
    s = int(round(abs(seconds)))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    mi, sec = divmod(rem, 60)
    if d:
        return f"{d} d {h} h" if h else f"{d} d"
    if h:
        return f"{h} h {mi} min" if mi else f"{h} h"
    if mi:
        return f"{mi} min {sec} s" if sec and mi < 10 else f"{mi} min"
    return f"{sec} s"


def when(at: float | None) -> str:
    """UTC, to the second."""
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="seconds")


def after(at: float | None, origin: float) -> str:
    """`+1 d 4 h` after the origin; `never`."""
    if at is None:
        return "never"
    return ("+" if at >= origin else "-") + span(at - origin)


def per_hour(per_second: float) -> str:
    """A rate as attempts per hour: `10,800/h`, `0.5/h`."""
    value = per_second * 3600
    return f"{value:,.0f}/h" if value >= 100 else f"{value:.3g}/h"
