"""The state database goes away mid-pass, for real: a PostgreSQL cluster of this module's own is restarted
(`pg_ctl stop -m fast` + start: what `pg_ctl restart -m fast` does) or stopped for 30 s while `amt-migrate run`
works pass 1, and a SQLite state file is locked by another process or its file system turns read-only.

A short restart is ridden through (every write in flight retried, each attempt recorded exactly once); past
`outages.state_retry_for` the run stops with exit 2 and a message naming the database, every host as it
stood, and the next run finds an activation whose record was lost by reading the server back, never by
asking again. The run is interrupted when the store shows N pass-1 decisions, never after a fixed sleep.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lab.openssh import free_port
from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.outage_helpers import check_against_lab, decisions, fleet, missing_attempts, set_outages, wait_for, wave
from tests.pg_fixture import PgCluster, pg_bindir
from tests.site_fixtures import start_site
from tests.test_reliability_crash import prefect_api_url, run_env, start_run  # noqa: F401 - fixture

LATENCY = {"provision": "1s-1500ms", "renew": "200ms-300ms", "ssh": "10ms-30ms"}


@pytest.fixture(scope="module")
def own_pg():
    """A cluster of this module's own: restarting the session's would cut other tests' connections."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    import os

    tmp = Path(tempfile.mkdtemp(prefix="amtmig-pg-outage-"))
    os.chmod(tmp, 0o700)
    cluster = PgCluster(bindir, tmp, free_port()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _site(tmp: Path, url: str | None, prefix: str, net: int, **outages):
    site = start_site(tmp, fleet(prefix, 18, net), [wave()], window="90s", latency=LATENCY, state_url=url)
    if outages:
        set_outages(site.inventory, **outages)
    return site


def _flow_run_state(api_url: str, flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def test_postgresql_restarted_mid_pass_is_ridden_through_and_stopped_past_the_bound_stops_the_run(
        tmp_path, own_pg, prefect_api_url):  # noqa: F811
    """One run meets three outages of its PostgreSQL in pass 1: a plain fast restart, a restart it notices
    (down until its log says so) — both ridden through — then a 30 s stop, longer than its 12 s bound: it
    stops with exit 2 naming the database. The next run finishes every host, reading back the activations
    whose record the stop prevented."""
    url = own_pg.url(own_pg.create_database())
    site = _site(tmp_path, url, "P", 21, state_retry_for="12s")
    log = tmp_path / "run.log"
    env = run_env(site, prefect_api_url, tmp_path / "home")
    try:
        proc = start_run(site, env, out=log)
        wait_for("3 pass-1 decisions", lambda: decisions(url) >= 3, proc, log=log)
        own_pg.restart("fast")  # every connection cut, open transactions rolled back, the server back in ~1 s
        wait_for("6 pass-1 decisions", lambda: decisions(url) >= 6, proc, log=log)
        own_pg.stop_server("fast")  # a restart the run notices: down until its log says it met it
        try:
            wait_for("the run to meet the outage", lambda: "is not answering" in log.read_text(), proc, timeout=60,
                     log=log)
        finally:
            own_pg.start_server()
        wait_for("the run to ride it through", lambda: "answers again" in log.read_text(), proc, log=log)
        wait_for("9 pass-1 decisions", lambda: decisions(url) >= 9, proc, log=log)
        own_pg.stop_server("fast")  # now a 30 s stop: longer than outages.state_retry_for
        stopped = time.monotonic()
        try:
            rc = proc.wait(120)
            out = log.read_text()
            assert rc == 2, out[-4000:]
            # the last word names the database (never a password) and the bound, and says what to do next
            last = out.strip().splitlines()[-1]
            assert last.startswith("Stopped: state database unavailable"), out[-3000:]
            assert f"127.0.0.1:{own_pg.port}" in last and "state_retry_for" in last, last
            assert f"amt-migrate run {site.inventory} --wave w" in last, last
            assert "unexpected error" not in out and "Traceback" not in out, out[-4000:]
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))  # the rest of a 30 s stop
        finally:
            own_pg.start_server()

        store = StateStore(url)
        truth = site.admin_all()
        # every host as it stood at the stop; activations that happened while the database was away are the
        # lab's alone: at most one per host in flight
        unrecorded = missing_attempts(store, "w", truth)
        assert 1 <= len(unrecorded) <= 4 and set(unrecorded.values()) == {1}, unrecorded  # max_concurrency 4
        activated = {n for n in unrecorded if truth[n]["state"] == "provisioned"}
        assert activated, "no activation happened while the database was away: the test proves less"
        assert all(store.get("w", n).status == "pending" for n in activated)
        first_run = {e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}
        assert len(first_run) == 1
        state = _flow_run_state(prefect_api_url, first_run.pop())
        assert state.type.value == "FAILED" and state.name == "Stopped: state database unavailable", state

        assert start_run(site, env, out=log).wait(240) == 0, log.read_text()[-4000:]
        statuses = check_against_lab(store, "w", site.admin_all(), unrecorded=unrecorded)
        assert set(statuses.values()) == {"provisioned"}
        for n in activated:  # found by reading the server back, not provisioned again
            decided = [e for e in store.history([n], "w") if e.status_after == "provisioned"]
            assert decided[0].action == "observe", decided
        store.close()
    finally:
        site.lab.stop()


def test_a_sqlite_state_file_locked_or_turned_read_only_is_a_clear_stop_and_the_next_run_finishes(
        tmp_path, prefect_api_url):  # noqa: F811
    """Run 1: another process takes the writers' lock (`BEGIN EXCLUSIVE`) for longer than the 4 s bound;
    run 2: the file system turns read-only under it (chattr +i: writes through the open files fail with EPERM,
    as on a file system remounted read-only). Each is a stop with exit 2 naming the file and why; run 3 ends
    every host right."""
    site = _site(tmp_path, None, "L", 23, state_retry_for="4s")
    url = load_inventory(site.inventory).state_url
    db = Path(url[len("sqlite:///"):])
    log = tmp_path / "run.log"
    env = run_env(site, prefect_api_url, tmp_path / "home")
    frozen: list[Path] = []

    def stopped(proc, why: str) -> None:
        rc = proc.wait(120)
        out = log.read_text()
        assert rc == 2, out[-4000:]
        last = out.strip().splitlines()[-1]
        assert last.startswith("Stopped: state database unavailable") and url in last and why in last, last
        assert "unexpected error" not in out and "Traceback" not in out, out[-3000:]

    try:
        proc = start_run(site, env, out=log)
        wait_for("3 pass-1 decisions", lambda: decisions(url) >= 3, proc, log=log)
        locker = sqlite3.connect(db, isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")  # a backup tool, a second program: holds the writers' lock
        try:
            stopped(proc, "another process holds the file locked")
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        if shutil.which("chattr") is None:
            pytest.skip("chattr (e2fsprogs) not installed: the read-only case is not run")
        seen = decisions(url)
        proc = start_run(site, env, out=log)
        wait_for("3 more pass-1 decisions", lambda: decisions(url) >= seen + 3, proc, log=log)
        # the -shm index is memory-mapped: freezing it would be a SIGBUS, not what a read-only mount does to it
        for f in (db, db.with_name(db.name + "-wal")):
            if subprocess.run(["chattr", "+i", str(f)], capture_output=True).returncode != 0:
                pytest.skip(f"chattr +i is not supported on {f.parent}")
            frozen.append(f)
        stopped(proc, "read-only or failing file system")
        for f in frozen:  # writable again: the next run finishes from where each host stood
            subprocess.run(["chattr", "-i", str(f)], check=True)
        frozen.clear()

        assert start_run(site, env, out=log).wait(240) == 0, log.read_text()[-4000:]
        store = StateStore(url)
        truth = site.admin_all()
        unrecorded = missing_attempts(store, "w", truth)
        # at most the hosts in flight at each of the two stops (max_concurrency 4), once per stop
        assert sum(unrecorded.values()) <= 8 and max(unrecorded.values(), default=0) <= 2, unrecorded
        statuses = check_against_lab(store, "w", truth, unrecorded=unrecorded)
        assert set(statuses.values()) == {"provisioned"}
        store.close()
    finally:
        for f in frozen:
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        site.lab.stop()
