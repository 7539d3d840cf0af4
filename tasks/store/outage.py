"""The state database going away mid-run: which errors are an outage, and riding through one for a bounded time.

What a restart looks like from here (measured against PostgreSQL 15 with psycopg 3.3 and SQLAlchemy 2.0,
`pg_ctl stop -m fast` then start): statements in flight fail with "server closed the connection
unexpectedly" (SQLAlchemy marks these `connection_invalidated`: its psycopg dialect's `is_disconnect` is
"the connection is closed or broken", sqlalchemy/dialects/postgresql/psycopg.py), then new connections fail
with "the database system is shutting down" / "Connection refused" / "starting up" until the server
accepts again. A fast shutdown rolls back every open transaction (PostgreSQL docs, "Shutting Down the
Server": SIGINT "sends all existing server processes SIGTERM, which will cause them to abort their current
transactions"), so a write that failed was not applied — except in the one case nobody can tell from the
client: COMMIT sent and the connection lost before its answer. Writes of events are therefore made
idempotent by the caller (state.py: an event's own timestamp is looked for before it is written again).

The SQLSTATEs taken as "the database is away" (PostgreSQL Appendix A, Error Codes): class 08 (connection
exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, class 53 (insufficient
resources: too many connections), and class 40 (transaction rollback: serialization failure, deadlock; safe to
redo since nothing was committed). A connection attempt that never reached a server has no SQLSTATE.

SQLite has no server to come back: a state file that is locked (SQLITE_BUSY/LOCKED after the busy timeout,
which is set to the same bound), read-only (SQLITE_READONLY), unopenable, full or failing I/O is a stop at
once (result codes: https://www.sqlite.org/rescode.html; Python 3.11's sqlite3 errors carry
`sqlite_errorname`).

Past the bound the store trips: every later call raises StateUnavailable at once, so a run stops instead
of each host waiting out its own bound, and nothing is attempted that could not be recorded.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("amt_migrate.state")

T = TypeVar("T")

_PG_AWAY_CLASSES = ("08", "53", "40")
_PG_AWAY_CODES = {"57P01", "57P02", "57P03"}
_SQLITE_STOP = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR",
                "SQLITE_FULL", "SQLITE_PERM", "SQLITE_NOTADB", "SQLITE_CORRUPT")


class StateError(Exception):
    """The store can't be opened or used (bad URL, newer schema, unreachable database)."""


class StateUnavailable(StateError):
    """The state database stayed away past its bound (or a SQLite file can't be written): the run stops,
    every host as the database last recorded it."""


def outage_kind(exc: BaseException) -> str | None:
    """'retry' (the database is away and may come back), 'stop' (it won't by waiting: a SQLite file locked past
    its busy timeout, read-only, unopenable), or None (not an outage: a bug, a constraint, a bad statement)."""
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    errorname = getattr(orig, "sqlite_errorname", None)
    if errorname is not None:
        return "stop" if errorname.startswith(_SQLITE_STOP) else None
    if exc.connection_invalidated:
        return "retry"
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if not isinstance(orig, psycopg.OperationalError):
        return None
    code = getattr(orig, "sqlstate", None)
    if code is None or code in _PG_AWAY_CODES or code[:2] in _PG_AWAY_CLASSES:
        return "retry"
    return None


def first_line(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and background-link lines."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class OutageGuard:
    """Runs a store operation, retrying it while the database is away, for at most `retry_for` seconds per
    outage (measured from the first failure any thread saw, so fifty waiting hosts share one deadline)."""

    def __init__(self, what: str, retry_for: float, *, first_delay: float = 0.2, max_delay: float = 5.0):
        self.what = what  # "state database postgresql+psycopg://amtmig@db:5432/amtmig" (no password)
        self.retry_for = retry_for
        self.first_delay, self.max_delay = first_delay, max_delay
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic time of the first failure of the current outage
        self._tripped: str | None = None
        self.outages = 0  # outages ridden through (for the run's log and the benchmark)

    @property
    def tripped(self) -> str | None:
        return self._tripped

    def run(self, op: Callable[[bool], T]) -> T:
        """op(retrying) does one try in its own transaction; `retrying` is True after a failed try (so a
        write can first look whether that try was committed after all)."""
        retrying = False
        delay = self.first_delay
        while True:
            if self._tripped:
                raise StateUnavailable(self._tripped)
            try:
                result = op(retrying)
            except DBAPIError as exc:
                kind = outage_kind(exc)
                if kind is None:
                    raise
                wait = self._failed(exc, kind)
                time.sleep(min(wait, delay * (0.5 + random.random())))
                delay = min(delay * 2, self.max_delay)
                retrying = True
                continue
            if self._since is not None:
                self._recovered()
            return result

    def _failed(self, exc: DBAPIError, kind: str) -> float:
        """Note the failure; raise StateUnavailable when the bound is spent (or at once for 'stop'); else the
        time left."""
        now = time.monotonic()
        with self._lock:
            if self._tripped:
                raise StateUnavailable(self._tripped) from None
            if kind == "stop":
                self._tripped = f"{self.what} can't be used: {_sqlite_words(exc, self.retry_for)}"
            else:
                if self._since is None:
                    self._since = now
                    log.warning("%s is not answering (%s): retrying for up to %s", self.what, first_line(exc),
                                _seconds(self.retry_for))
                left = self._since + self.retry_for - now
                if left > 0:
                    return left
                self._tripped = (f"{self.what} did not answer for {_seconds(self.retry_for)} "
                                 f"(outages.state_retry_for): {first_line(exc)}")
            log.error("%s", self._tripped)
        raise StateUnavailable(self._tripped) from None

    def _recovered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            took = time.monotonic() - self._since
            self._since = None
            self.outages += 1
        log.warning("%s answers again after %s: the run goes on", self.what, _seconds(took))


def _sqlite_words(exc: DBAPIError, waited: float) -> str:
    """What a SQLite result code means for the operator, then SQLite's own words."""
    name = getattr(exc.orig, "sqlite_errorname", "") or ""
    said = first_line(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (f"another process holds the file locked (waited {_seconds(waited)}, outages.state_retry_for; "
                f"SQLite: {said})")
    if name.startswith("SQLITE_READONLY"):
        return f"the file is read-only (SQLite: {said})"
    if name.startswith("SQLITE_IOERR"):
        return f"the file can't be written: a read-only or failing file system (SQLite: {said})"
    if name.startswith("SQLITE_FULL"):
        return f"the disk is full (SQLite: {said})"
    return f"SQLite: {said} ({name})"


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
