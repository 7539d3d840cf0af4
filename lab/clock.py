"""Clocks for the lab.

The fleet model never reads the system time itself: every behaviour that depends on time (the
interface window, self-retry, half-lease renews) asks a clock, so unit tests can step time by hand
and a demo can run a 24 h window in minutes.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

#: Where a ManualClock starts by default: a fixed instant so unit-test output is reproducible.
DEFAULT_EPOCH = datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone.utc).timestamp()


class Clock:
    """Seconds since the Unix epoch, as a float (lab time, not necessarily wall time)."""

    manual = False

    def now(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)


class RealClock(Clock):
    """Wall time, optionally sped up: ``time_scale=60`` turns a 30 min window into 30 s."""

    def __init__(self, time_scale: float = 1.0):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) * self.time_scale


class ManualClock(Clock):
    """A clock that moves only when told to; for unit tests and rehearsals driven step by step."""

    manual = True

    def __init__(self, start: float = DEFAULT_EPOCH):
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("a clock does not go backwards")
            self._now = float(when)
