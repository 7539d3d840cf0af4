"""The state store: one row per (wave, host) and an append-only history, in any SQLAlchemy database.

Every stage reads and writes here rather than Prefect's API, so reruns, reports and crash recovery
work from one source of truth. A status change and its history event commit together or not at all.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, create_engine, event, func, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tasks.rules.host_state import Cause, IllegalTransition, Status, check_transition
from tasks.store.leases import LeaseMixin, worker_id
from tasks.store.outage import OutageGuard, StateError, StateUnavailable
from tasks.store.tables import _Base, _EventRow, _HostRow, _Meta, _aware, utcnow

SCHEMA_VERSION = 1
STATE_RETRY_FOR = timedelta(minutes=2)  # the inventory's outages.state_retry_for overrides it for a run


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class HostRecord:
    wave: str
    host: str
    address: str
    status: str
    cause: str | None
    provisioned_in_pass: int | None
    window_closes_at: datetime | None
    attempts: int
    evidence: dict | None
    next_step: str | None
    updated_at: datetime
    last_stage: str | None = None  # the stage of the last status change: how a resumed run continues

    @classmethod
    def _of(cls, row: _HostRow) -> HostRecord:
        return cls(row.wave, row.host, row.address, row.status, row.cause, row.provisioned_in_pass,
                   _aware(row.window_closes_at), row.attempts, row.evidence, row.next_step, _aware(row.updated_at),
                   row.last_stage)

    def as_dict(self) -> dict:
        return {
            "host": self.host, "wave": self.wave, "address": self.address, "status": self.status,
            "cause": self.cause, "provisioned_in_pass": self.provisioned_in_pass,
            "window_closes_at": self.window_closes_at.isoformat() if self.window_closes_at else None,
            "attempts": self.attempts, "evidence": self.evidence, "next_step": self.next_step,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "last_stage": self.last_stage,
        }


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    wave: str
    host: str
    stage: str
    action: str
    outcome: str
    cause: str | None
    status_before: str | None
    status_after: str | None
    evidence: dict | None
    flow_run_id: str | None

    @classmethod
    def _of(cls, row: _EventRow) -> Event:
        return cls(row.id, _aware(row.at), row.wave, row.host, row.stage, row.action, row.outcome, row.cause,
                   row.status_before, row.status_after, row.evidence, row.flow_run_id)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        return d


def _switch_to_wal(cur, timeout: float = 60.0) -> None:
    """Changing a new database's journal mode answers 'database is locked' at once, without the busy
    handler, while another connection does the same: several openers of one new file must wait their turn."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_READ_ONLY = "amtmig_read_only"  # an execution option: this connection only reads


def _sqlite_pragmas(engine: Engine, busy_seconds: float) -> None:
    """WAL + immediate transactions: concurrent writers queue instead of failing with 'database is locked'.
    Another process holding the file locked longer than the run's state bound is a stop (tasks/store/outage.py)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={max(1000, int(busy_seconds * 1000))}")
        _switch_to_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # reads begin deferred: in WAL mode they never wait for a writer (nor make one wait)
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


class StateStore(LeaseMixin):
    """Per-host status with a legal-transition guard, and the history that explains it."""

    def __init__(self, url: str, *, create: bool = True, retry_for: timedelta = STATE_RETRY_FOR):
        self.url = url
        self.retry_for = retry_for.total_seconds()
        try:
            if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
                path = url[len("sqlite:///"):]
                folder = os.path.dirname(path)
                if folder and not os.path.isdir(folder):
                    if not create:
                        raise StateError(f"state database {path} does not exist")
                    os.makedirs(folder, exist_ok=True)
                if not create and not os.path.exists(path):
                    raise StateError(f"state database {path} does not exist")
            # pre-ping guards long-lived PostgreSQL connections; a local SQLite file needs none
            connect_args = {}
            if make_url(url).get_driver_name() in ("psycopg", "psycopg2"):
                connect_args["connect_timeout"] = 15  # an unreachable server fails the run instead of hanging it
            self.engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"),
                                        connect_args=connect_args)
        except StateError:
            raise
        except (SQLAlchemyError, ValueError, ImportError, OSError) as exc:
            raise StateError(f"cannot open state {self._safe_url()}: {exc}") from None
        # SQLite has one writer at a time; queueing this process's writers on a lock avoids its busy
        # handler, which sleeps up to 100 ms per retry and starved a 10,000-host wave of throughput.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else nullcontext()
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine, self.retry_for)
        # a restart or failover of the database mid-run: every read and write is retried for retry_for, then
        # the store trips and the run stops naming it (tasks/store/outage.py)
        self.guard = OutageGuard(f"state database {self._safe_url()}", self.retry_for)
        self._session = sessionmaker(self.engine, expire_on_commit=False)  # writes: see _tx
        self._read = sessionmaker(self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)
        # statements built once: building them per write cost more CPU than the writes themselves
        hosts = _HostRow.__table__
        self._select_host = select(hosts).where(hosts.c.wave == bindparam("w"), hosts.c.host == bindparam("h"))
        self._get_host = self._select_host
        if self.engine.dialect.name == "postgresql":
            self._select_host = self._select_host.with_for_update()
        self._update_host = update(hosts).where(hosts.c.id == bindparam("rid"))
        self._insert_event = _EventRow.__table__.insert()
        events = _EventRow.__table__
        self._event_at = select(events.c.id).where(events.c.wave == bindparam("w"), events.c.host == bindparam("h"),
                                                   events.c.at == bindparam("at"))
        self._prepare(create)

    def _safe_url(self) -> str:
        """The URL without its password, for messages."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable URL>"

    def _bytewise(self, column):
        """Order as SQLite and Python do (by code point), not by the PostgreSQL database's locale."""
        return column.collate("C") if self.engine.dialect.name == "postgresql" else column

    def _pg_lock(self, conn, name: str) -> None:
        """On PostgreSQL, serialize this transaction with others taking the same name (released at commit).
        SQLite needs none: its transactions begin IMMEDIATE, one writer at a time."""
        if self.engine.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_lock_key(f"amtmig:{name}"))))

    def _prepare(self, create: bool) -> None:
        try:
            with self.engine.begin() as conn:
                # two processes opening a new database at once: the second waits, then finds the schema
                # (PostgreSQL's DDL is transactional) instead of failing on CREATE TABLE or the version row
                self._pg_lock(conn, "schema")
                found = None
                if self.engine.dialect.has_table(conn, _Meta.__tablename__):
                    found = conn.execute(select(_Meta.value).where(_Meta.key == "schema_version")).scalar()
                if found is not None and int(found) > SCHEMA_VERSION:
                    raise StateError(
                        f"state {self._safe_url()} has schema version {found}, newer than this amt-migrate "
                        f"understands ({SCHEMA_VERSION}); upgrade amt-migrate instead of writing to it"
                    )
                if found is None:
                    if not create:
                        raise StateError(f"state {self._safe_url()} holds no amt-migrate data")
                    _Base.metadata.create_all(conn)
                    conn.execute(_Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        except StateError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(f"cannot open state {self._safe_url()}: {str(exc).splitlines()[0]}") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._write_lock, self._session.begin() as session:
            yield session

    def _retry(self, fn):
        """One transaction, retried while the database is away (reads and idempotent writes only)."""
        return self.guard.run(lambda _retrying: fn())

    # -- writes ------------------------------------------------------------------------------
    def ensure_hosts(self, wave: str, hosts: Iterable[tuple[str, str]]) -> int:
        """Add missing (host, address) rows as pending; existing rows keep their status. Returns rows added."""
        hosts = list(hosts)

        def enrol() -> int:
            with self._tx() as s:
                self._pg_lock(s, f"enrol:{wave}")  # workers enrolling one wave at once: no duplicate-key failure
                existing = set(s.execute(select(_HostRow.host).where(_HostRow.wave == wave)).scalars())
                new = [(h, a) for h, a in hosts if h not in existing]
                now = utcnow()
                if new:
                    s.execute(_HostRow.__table__.insert(), [
                        {"wave": wave, "host": h, "address": a, "status": Status.PENDING.value, "attempts": 0,
                         "updated_at": now} for h, a in new])
                    s.execute(_EventRow.__table__.insert(), [
                        {"at": now, "wave": wave, "host": h, "stage": "plan", "action": "enrol", "outcome": "ok",
                         "status_after": Status.PENDING.value} for h, _ in new])
            return len(new)

        return self._retry(enrol)

    def _write_host(self, wave: str, host: str, change) -> HostRecord:
        """Read one host row, let `change(row)` return (row updates, event values), write both at once.

        SQLAlchemy Core rather than the ORM: these are the hot writes of a 10,000-host wave and the
        ORM's per-transaction overhead (~2 ms CPU) made the store the wave's bottleneck. Retried while the
        database is away; a retry first looks for its own event (same host, same timestamp): a try whose
        COMMIT went through but whose answer was lost is not written twice.
        """
        now = utcnow()

        def write(retrying: bool) -> HostRecord:
            with self._write_lock, self.engine.begin() as conn:
                if retrying and conn.execute(self._event_at, {"w": wave, "h": host, "at": now}).first():
                    return HostRecord._of(conn.execute(self._get_host, {"w": wave, "h": host}).one())
                row = conn.execute(self._select_host, {"w": wave, "h": host}).mappings().one_or_none()
                if row is None:
                    raise KeyError(f"{host} is not in wave {wave} in this state store")
                updates, event_values = change(row)
                updates["updated_at"] = now
                conn.execute(self._update_host, {"rid": row["id"], **updates})
                conn.execute(self._insert_event, {"at": now, "wave": wave, "host": host, **event_values})
            merged = {**row, **updates}
            return HostRecord(merged["wave"], merged["host"], merged["address"], merged["status"], merged["cause"],
                              merged["provisioned_in_pass"], _aware(merged["window_closes_at"]), merged["attempts"],
                              merged["evidence"], merged["next_step"], _aware(merged["updated_at"]),
                              merged["last_stage"])

        return self.guard.run(write)

    def transition(self, wave: str, host: str, status: Status | str, *, stage: str, action: str,
                   outcome: str, cause: Cause | str | None = None, evidence: dict | None = None,
                   provisioned_in_pass: int | None = None, window_closes_at: datetime | None = None,
                   attempted: bool = False, next_step: str | None = None,
                   flow_run_id: str | None = None) -> HostRecord:
        """Move a host to a new status and append the event explaining it, in one transaction."""
        status = Status(status)

        def change(row):
            check_transition(row["status"], status, cause)
            new_cause = Cause(cause).value if cause is not None and status != Status.PROVISIONED else None
            updates = {"status": status.value, "cause": new_cause, "next_step": next_step, "last_stage": stage}
            if status == Status.PROVISIONED:
                updates["provisioned_in_pass"] = provisioned_in_pass
            updates.update(_fact_updates(row, window_closes_at, attempted, evidence))
            return updates, dict(stage=stage, action=action, outcome=outcome, cause=new_cause,
                                 status_before=row["status"], status_after=status.value, evidence=evidence,
                                 flow_run_id=flow_run_id)

        return self._write_host(wave, host, change)

    def record(self, wave: str, host: str, *, stage: str, action: str, outcome: str,
               cause: Cause | str | None = None, evidence: dict | None = None,
               window_closes_at: datetime | None = None, attempted: bool = False,
               flow_run_id: str | None = None) -> HostRecord:
        """Append an event that does not change the status (discovery evidence, a reopening attempt)."""

        def change(row):
            updates = _fact_updates(row, window_closes_at, attempted, evidence)
            return updates, dict(stage=stage, action=action, outcome=outcome,
                                 cause=Cause(cause).value if cause else None, status_before=row["status"],
                                 status_after=row["status"], evidence=evidence, flow_run_id=flow_run_id)

        return self._write_host(wave, host, change)

    def confirm_mebx(self, wave: str, host: str, *, note: str = "", by: str = "") -> HostRecord:
        """A technician's MEBx change, recorded: only now does the host go on to pass 2. Only a host on the
        work list (needs_mebx) can be confirmed; anything else is an error, not a silent no-op."""

        def change(row):
            if row["status"] != Status.NEEDS_MEBX.value:
                raise StateError(f"{host} in {wave} is {row['status']}, not needs_mebx: nothing to confirm")
            done = {"mebx_done_at": utcnow().isoformat(timespec="seconds"), "mebx_note": note or None,
                    "mebx_done_by": by or None}
            return _fact_updates(row, None, False, done), dict(
                stage="mebx", action="technician-done", outcome="confirmed", cause=None,
                status_before=row["status"], status_after=row["status"], evidence={k: v for k, v in done.items() if v},
                flow_run_id=None)

        return self._write_host(wave, host, change)

    def record_wave_event(self, wave: str, *, stage: str, action: str, outcome: str, evidence: dict | None = None,
                          flow_run_id: str | None = None) -> None:
        """An event about the whole wave (a go/no-go, a halt), under the host name '*'."""
        now = utcnow()

        def write(retrying: bool) -> None:
            with self._tx() as s:
                if retrying and s.execute(self._event_at, {"w": wave, "h": "*", "at": now}).first():
                    return
                s.add(_EventRow(at=now, wave=wave, host="*", stage=stage, action=action, outcome=outcome,
                                evidence=evidence, flow_run_id=flow_run_id))

        self.guard.run(write)

    # -- wave markers: a finished wave is left alone by `run` (only `rerun` touches it again) ---
    def mark_wave(self, wave: str, what: str, value: str | None = None) -> None:
        key = f"wave:{wave}:{what}"
        value = value or utcnow().isoformat()

        def mark() -> None:
            with self._tx() as s:
                self._pg_lock(s, key)
                row = s.get(_Meta, key)
                if row is None:
                    s.add(_Meta(key=key, value=value))
                else:
                    row.value = value

        self._retry(mark)

    def clear_wave_mark(self, wave: str, what: str) -> None:
        def clear() -> None:
            with self._tx() as s:
                row = s.get(_Meta, f"wave:{wave}:{what}")
                if row is not None:
                    s.delete(row)

        self._retry(clear)

    def wave_mark(self, wave: str, what: str) -> str | None:
        def read() -> str | None:
            with self._read() as s:
                row = s.get(_Meta, f"wave:{wave}:{what}")
                return row.value if row else None

        return self._retry(read)

    def wave_marks(self, wave: str, prefix: str) -> dict[str, str]:
        """Every mark of the wave whose name starts with `prefix` (e.g. the runs at work on it), by name."""
        start = f"wave:{wave}:"

        def read() -> dict[str, str]:
            with self._read() as s:
                rows = s.execute(select(_Meta.key, _Meta.value).where(_Meta.key.like(f"{start}{prefix}%"))).all()
            return {k[len(start):]: v for k, v in rows if k.startswith(start + prefix)}  # LIKE's _ matches any

        return self._retry(read)

    # -- reads -------------------------------------------------------------------------------
    def get(self, wave: str, host: str) -> HostRecord:
        def read():
            with self._read() as s:  # a Core row, not an ORM instance: ~3x less CPU, asked several times per host
                return s.execute(self._get_host, {"w": wave, "h": host}).one_or_none()

        row = self._retry(read)
        if row is None:
            raise KeyError(f"{host} is not in wave {wave} in this state store")
        return HostRecord._of(row)

    def hosts(self, wave: str | None = None, *, status: Iterable[str] | str | None = None,
              cause: Iterable[str] | str | None = None, pattern: str | None = None) -> list[HostRecord]:
        q = select(_HostRow).order_by(self._bytewise(_HostRow.wave), self._bytewise(_HostRow.host))
        if wave:
            q = q.where(_HostRow.wave == wave)
        if status:
            q = q.where(_HostRow.status.in_([status] if isinstance(status, str) else list(status)))
        if cause:
            q = q.where(_HostRow.cause.in_([cause] if isinstance(cause, str) else list(cause)))

        def read() -> list[HostRecord]:
            with self._read() as s:
                return [HostRecord._of(r) for r in s.execute(q).scalars()]

        rows = self._retry(read)
        if pattern:
            rows = [r for r in rows if fnmatch.fnmatchcase(r.host.lower(), pattern.lower())]
        return rows

    def counts(self, wave: str) -> dict[str, int]:
        def read() -> dict[str, int]:
            with self._read() as s:
                return dict(s.execute(select(_HostRow.status, func.count()).where(_HostRow.wave == wave)
                                      .group_by(_HostRow.status)).all())

        return self._retry(read)

    def status_cause_counts(self, wave: str) -> dict[tuple[str, str | None], int]:
        """Hosts per (status, cause): cheap enough to ask after every batch of a 10,000-host wave."""
        def read():
            with self._read() as s:
                return s.execute(select(_HostRow.status, _HostRow.cause, func.count()).where(_HostRow.wave == wave)
                                 .group_by(_HostRow.status, _HostRow.cause)).all()

        return {(status, cause): n for status, cause, n in self._retry(read)}

    def history(self, hosts: Iterable[str] | None = None, wave: str | None = None) -> list[Event]:
        q = select(_EventRow).order_by(_EventRow.id)
        if hosts:  # host names match in any case, as everywhere else (globs, the inventory)
            q = q.where(func.lower(_EventRow.host).in_([h.lower() for h in hosts]))
        if wave:
            q = q.where(_EventRow.wave == wave)

        def read() -> list[Event]:
            with self._read() as s:
                return [Event._of(r) for r in s.execute(q).scalars()]

        return self._retry(read)

    def waves(self) -> list[str]:
        def read() -> list[str]:
            with self._read() as s:
                col = self._bytewise(_HostRow.wave)
                return list(s.execute(select(col).distinct().order_by(col)).scalars())

        return self._retry(read)


def _fact_updates(row, window_closes_at: datetime | None, attempted: bool, evidence: dict | None) -> dict:
    """What any event may change besides the status: the window, the attempt count, the evidence."""
    updates: dict = {}
    if window_closes_at is not None:
        updates["window_closes_at"] = window_closes_at
    if attempted:
        updates["attempts"] = row["attempts"] + 1
    if evidence is not None:
        updates["evidence"] = _merge_evidence(row["evidence"], evidence)
    return updates


def _merge_evidence(old: dict | None, new: dict) -> dict:
    """The host's latest evidence: new facts replace old ones, and a None clears a fact that no longer holds."""
    merged = {**(old or {}), **new}
    return {k: v for k, v in merged.items() if v is not None}


__all__ = ["StateStore", "StateError", "StateUnavailable", "HostRecord", "Event", "IllegalTransition", "SCHEMA_VERSION",
           "worker_id", "utcnow"]
