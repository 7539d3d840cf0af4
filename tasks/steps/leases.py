"""A run's side of host leases: keep its own alive, wait for hosts another worker holds, and tell runs
that are gone from runs that are at work.

A live worker renews every lease it holds each third of `outages.lease_ttl`, so its hosts are never
taken from it however long a batch runs; a worker whose machine is lost stops renewing, and after the
TTL another worker leases its hosts, reads each back (is it provisioned already?) and continues it.
The same beat refreshes the run's mark in the store (`wave:W:run:<flow run id>` = "<worker> <time>"): a
later run finds the runs whose process is gone (dead pid on this machine, or no beat for a TTL) and
says so on the Prefect server (flows/outages.py), where they would otherwise stay "Running".
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from datetime import datetime

from tasks.store.leases import _owner_alive
from tasks.store.state import StateStore, StateUnavailable, utcnow

log = logging.getLogger("amt_migrate")


RUN_MARK = "run:"


class LeaseKeeper:
    """A daemon thread renewing this worker's leases in one wave (and its run's mark) every ttl/3 until stopped."""

    def __init__(self, store: StateStore, wave: str, owner: str, ttl: timedelta):
        self.store, self.wave, self.owner, self.ttl = store, wave, owner, ttl
        self.flow_run_id: str | None = None  # set by register_run: its mark is beaten too
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        every = self.ttl.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                self.store.renew_leases(self.wave, self.owner, self.ttl)
                if self.flow_run_id:
                    beat_run(self.store, self.wave, self.flow_run_id, self.owner)
            except StateUnavailable:
                return  # the run is stopping: its leases run out and the next run (or worker) takes the hosts
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.warning("renewing the leases of %s failed; retrying in %.0f s", self.owner, every, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def wait_until_free(store: StateStore, wave: str, hosts: list[str], owner: str, *, poll: float = 1.0,
                    stop: threading.Event | None = None, say=log.info) -> list[str]:
    """Block until some of `hosts` are no longer held by another live worker (finished and released, or its
    lease ran out); returns those. Polls the store, starting at `poll` seconds and backing off to 10."""
    said = False
    while True:
        held = store.held_elsewhere(wave, hosts, owner)
        free = [h for h in hosts if h not in held]
        if free or (stop is not None and stop.is_set()):
            return free
        if not said:
            latest = max((t for t in held.values() if t is not None), default=None)
            say("%d host(s) of %s are held by another worker; waiting for them (leases run to %s at the "
                     "latest unless renewed)", len(held), wave,
                     f"{latest:%H:%M:%S} UTC" if latest else "no expiry")
            said = True
        soonest = min((t for t in held.values() if t is not None), default=None)
        until_expiry = (soonest - utcnow()).total_seconds() if soonest else poll
        time.sleep(max(0.2, min(poll, until_expiry + 0.1)))
        poll = min(poll * 1.5, 10.0)


def beat_run(store: StateStore, wave: str, flow_run_id: str, worker: str) -> None:
    store.mark_wave(wave, RUN_MARK + flow_run_id, f"{worker} {utcnow().isoformat()}")


def register_run(keeper: LeaseKeeper, flow_run_id: str | None) -> None:
    """This run is at work on the wave: mark it now, beat the mark with the leases, from now on."""
    if not flow_run_id:
        return
    beat_run(keeper.store, keeper.wave, flow_run_id, keeper.owner)
    keeper.flow_run_id = flow_run_id
    keeper.start()


def forget_run(store: StateStore, wave: str, flow_run_id: str | None) -> None:
    if flow_run_id:
        store.clear_wave_mark(wave, RUN_MARK + flow_run_id)


def gone_runs(store: StateStore, wave: str, current: str | None, ttl: timedelta) -> list[str]:
    """Flow-run ids of earlier runs of the wave whose process is gone: its worker is a dead process on this
    machine, or its mark has not been beaten for a TTL (a lost machine)."""
    now = utcnow()
    gone = []
    for key, value in store.wave_marks(wave, RUN_MARK).items():
        run_id = key[len(RUN_MARK):]
        if run_id == current:
            continue
        worker, _, at = value.rpartition(" ")
        try:
            beat = datetime.fromisoformat(at)
        except ValueError:
            beat = None
        if not _owner_alive(worker) or beat is None or now - beat > ttl:
            gone.append(run_id)
    return gone
