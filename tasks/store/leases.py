"""Host leases: several workers (runs, shards, machines) on one wave never work the same host at once.

A batch leases its hosts before working them and releases them after; a live worker renews its leases
every third of the TTL (tasks/steps/leases.py), so only a lost worker's leases run out. A dead process's
leases on this machine are free at once (its pid is gone, or belongs to a younger process); another
machine's after `outages.lease_ttl`.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update

from tasks.store.tables import _HostRow, _aware, utcnow


class LeaseMixin:
    """The lease methods of StateStore (tasks/store/state.py), kept here to keep that file readable."""

    def lease(self, wave: str, hosts: list[str], owner: str, ttl: timedelta) -> list[str]:
        """Claim the hosts nobody else holds (or whose holder's lease expired); returns those claimed, sorted.

        On PostgreSQL rows another transaction has locked at this moment are skipped, not waited for
        (SKIP LOCKED): concurrent workers never block each other, and a host skipped now is offered again
        on the next call."""
        hosts = list(hosts)

        def claim() -> list[str]:
            now = utcnow()
            claimed: list[str] = []
            with self._tx() as s:
                q = select(_HostRow).where(_HostRow.wave == wave, _HostRow.host.in_(hosts))
                if self.engine.dialect.name == "postgresql":
                    q = q.with_for_update(skip_locked=True)
                for row in s.execute(q).scalars():
                    expires = _aware(row.lease_expires_at)
                    if (row.lease_owner in (None, owner) or expires is None or expires <= now
                            or not _owner_alive(row.lease_owner)):
                        row.lease_owner, row.lease_expires_at = owner, now + ttl
                        claimed.append(row.host)
            return sorted(claimed)

        return self._retry(claim)

    def renew_leases(self, wave: str, owner: str, ttl: timedelta) -> int:
        """A live worker pushes the expiry of every lease it holds in the wave forward (its heartbeat)."""
        def renew() -> int:
            with self._tx() as s:
                return s.execute(update(_HostRow).where(_HostRow.wave == wave, _HostRow.lease_owner == owner)
                                 .values(lease_expires_at=utcnow() + ttl)).rowcount

        return self._retry(renew)

    def held_elsewhere(self, wave: str, hosts: list[str], owner: str) -> dict[str, datetime | None]:
        """Of `hosts`, those another worker holds a live lease on now, with when that lease expires."""
        hosts = list(hosts)

        def read() -> dict[str, datetime | None]:
            with self._read() as s:
                rows = s.execute(select(_HostRow.host, _HostRow.lease_owner, _HostRow.lease_expires_at)
                                 .where(_HostRow.wave == wave, _HostRow.host.in_(hosts),
                                        _HostRow.lease_owner.is_not(None), _HostRow.lease_owner != owner)).all()
            now = utcnow()
            return {h: _aware(exp) for h, who, exp in rows
                    if (exp is None or _aware(exp) > now) and _owner_alive(who)}

        return self._retry(read)

    def release(self, wave: str, hosts: list[str], owner: str) -> None:
        hosts = list(hosts)

        def free() -> None:
            with self._tx() as s:
                s.execute(update(_HostRow).where(_HostRow.wave == wave, _HostRow.host.in_(hosts),
                                                 _HostRow.lease_owner == owner)
                          .values(lease_owner=None, lease_expires_at=None))

        self._retry(free)


def worker_id() -> str:
    """host:pid@start:random; the start time tells a live holder from a new process that reuses its pid."""
    pid = os.getpid()
    start = (_proc_stat(pid) or ("", None))[1]
    return f"{socket.gethostname()}:{pid}{'@' + start if start else ''}:{uuid.uuid4().hex[:8]}"


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) from /proc/PID/stat; None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        return fields[0].decode(), fields[19].decode()
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(owner: str) -> bool:
    """A lease held by a dead process on this machine is free at once (a run killed with -9 and
    restarted), also when its pid was reused since or it is an unreaped zombie; one held on another
    machine waits for its expiry."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")[0].partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(int(pid))
    if stat is not None and (stat[0] == "Z" or (start and stat[1] != start)):
        return False
    return True
