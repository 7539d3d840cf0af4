"""Property test of the real StateStore: random transition requests, a consistent history, and a
provisioned host that stays provisioned.

tests/test_host_state.py checks the pure guard; this drives the SQLite store the flows write to, so
the properties cover what is actually persisted (status row + append-only events in one transaction).
"""

from __future__ import annotations

import itertools
import time
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.rules.host_state import NEEDS_CAUSE, TRANSITIONS, Cause, IllegalTransition, Status
from tasks.store.state import StateStore

HOSTS = ["H-1", "H-2", "H-3"]
_DIR = Path(tempfile.mkdtemp(prefix="amtmig-prop-"))
_STORE: StateStore | None = None
_WAVES = itertools.count()


def _store() -> StateStore:
    """One store for every example (opening SQLite per example is slow); each example gets its own wave."""
    global _STORE
    if _STORE is None:
        _STORE = StateStore(f"sqlite:///{_DIR / 'prop.db'}")
    return _STORE


requests = st.lists(
    st.one_of(
        st.tuples(st.just("transition"), st.sampled_from(HOSTS), st.sampled_from(list(Status)),
                  st.sampled_from([None, *Cause]), st.booleans(), st.sampled_from([None, 1, 2])),
        st.tuples(st.just("record"), st.sampled_from(HOSTS), st.none(), st.sampled_from([None, *Cause]),
                  st.booleans(), st.none()),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_random_requests_keep_the_stored_history_consistent_and_provisioned_final(reqs):
    store = _store()
    wave = f"w{next(_WAVES)}"
    store.ensure_hosts(wave, [(h, f"10.0.0.{i}") for i, h in enumerate(HOSTS, 1)])
    model = {h: Status.PENDING for h in HOSTS}
    attempts = {h: 0 for h in HOSTS}
    provisioned_pass: dict[str, int | None] = {}
    for kind, host, new, cause, attempted, pass_no in reqs:
        before_events = len(store.history([host], wave))
        if kind == "record":
            rec = store.record(wave, host, stage="discovery", action="discover", outcome="ok", cause=cause,
                               attempted=attempted, evidence={"n": before_events})
            attempts[host] += attempted
            assert rec.status == model[host]
            continue
        legal = new in TRANSITIONS[model[host]] and not (new in NEEDS_CAUSE and cause is None)
        try:
            rec = store.transition(wave, host, new, stage="pass1", action="provision", outcome="x", cause=cause,
                                   attempted=attempted, provisioned_in_pass=pass_no)
        except IllegalTransition:
            assert not legal, (model[host], new, cause)
            # a refused move writes nothing at all
            assert len(store.history([host], wave)) == before_events
            assert store.get(wave, host).status == model[host]
            continue
        assert legal, (model[host], new, cause)
        assert model[host] not in (Status.PROVISIONED, Status.UNSUPPORTED), "a terminal host moved"
        model[host] = new
        attempts[host] += attempted
        if new == Status.PROVISIONED:
            provisioned_pass[host] = pass_no
            assert rec.cause is None
        elif new in NEEDS_CAUSE:
            assert rec.cause == Cause(cause).value

    for host in HOSTS:
        rec = store.get(wave, host)
        assert rec.status == model[host]
        assert rec.attempts == attempts[host]
        if host in provisioned_pass:
            assert rec.provisioned_in_pass == provisioned_pass[host]
        events = store.history([host], wave)
        assert events[0].action == "enrol" and events[0].status_after == Status.PENDING
        ids = [e.id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        status = Status.PENDING
        seen_provisioned = False
        for e in events[1:]:
            assert e.status_before == status, (host, e)  # every change chains from the previous one
            if e.status_before != e.status_after:
                assert Status(e.status_after) in TRANSITIONS[Status(e.status_before)]
            if e.status_after in NEEDS_CAUSE and e.status_before != e.status_after:
                assert e.cause is not None
            if seen_provisioned:
                assert e.status_after == Status.PROVISIONED, "a provisioned host became unprovisioned"
            seen_provisioned = seen_provisioned or e.status_after == Status.PROVISIONED
            status = Status(e.status_after)
        assert status == model[host]


def test_a_lease_held_by_a_dead_process_is_free_even_if_its_pid_was_reused_or_it_is_a_zombie(tmp_path):
    """A run killed with -9 leaves its leases behind; the next run must get them at once, even when the
    dead run's pid now belongs to another process (PIDs wrap quickly on a busy machine) or the dead run
    was never reaped."""
    import socket
    import subprocess
    from datetime import timedelta

    from tasks.store.state import worker_id

    store = StateStore(f"sqlite:///{tmp_path / 's.db'}")
    store.ensure_hosts("w", [("A", ""), ("B", ""), ("C", "")])
    me = worker_id()
    assert store.lease("w", ["A"], me, timedelta(minutes=15)) == ["A"]
    assert store.lease("w", ["A"], worker_id(), timedelta(minutes=15)) == []  # a live holder keeps it
    other = subprocess.Popen(["sleep", "30"])
    try:
        host = socket.gethostname()
        # B: held by "pid P started at tick 1": P is alive now, but it is not the process that leased B
        assert store.lease("w", ["B"], f"{host}:{other.pid}@1:dead0001", timedelta(minutes=15)) == ["B"]
        assert store.lease("w", ["B"], me, timedelta(minutes=15)) == ["B"]
        # C: held by a process that was killed and is a zombie until reaped
        assert store.lease("w", ["C"], f"{host}:{other.pid}:dead0002", timedelta(minutes=15)) == ["C"]
        other.kill()
        for _ in range(50):
            if open(f"/proc/{other.pid}/stat").read().split(") ")[1].startswith("Z"):
                break
            time.sleep(0.02)
        assert store.lease("w", ["C"], me, timedelta(minutes=15)) == ["C"]
    finally:
        other.kill()
        other.wait()
    store.close()
