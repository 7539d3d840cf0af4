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
from tests.outage_helpers import check_against_lab, decisions, fleet, set_outages, wait_for, wave
from tests.pg_fixture import PgCluster, pg_bindir
from tests.site_fixtures import start_site
from tests.test_reliability_crash import lab_attempts, prefect_api_url, run_env, start_run  # noqa: F401 - fixture

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
    site = start_site(tmp, fleet(prefix, 24, net), [wave()], window="90s", latency=LATENCY, state_url=url)
    if outages:
        set_outages(site.inventory, **outages)
    return site


def _flow_run_state(api_url: str, flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def test_a_postgresql_restart_mid_pass_is_ridden_through_with_every_attempt_recorded_once(
        tmp_path, own_pg, prefect_api_url):  # noqa: F811
    url = own_pg.url(own_pg.create_database())
    site = _site(tmp_path, url, "R", 21)
    log = tmp_path / "run.log"
    try:
        proc = start_run(site, run_env(site, prefect_api_url, tmp_path / "home"), out=log)
        wait_for("4 pass-1 decisions", lambda: decisions(url) >= 4, proc, log=log)
        own_pg.restart("fast")  # every connection cut, open transactions rolled back, the server back in ~1 s
        wait_for("8 pass-1 decisions", lambda: decisions(url) >= 8, proc, log=log)
        # a restart the run notices: down until the run has met it (its log says so), then back
        own_pg.stop_server("fast")
        try:
            wait_for("the run to meet the outage", lambda: "is not answering" in log.read_text(), proc, timeout=60,
                     log=log)
        finally:
            own_pg.start_server()
        assert proc.wait(240) == 0, log.read_text()[-4000:]
        out = log.read_text()
        assert decisions(url) == 24
        assert "answers again" in out and "unexpected error" not in out, out[-3000:]  # it rode the outage through

        store = StateStore(url)
        statuses = check_against_lab(store, "w", site.admin_all())
        assert set(statuses.values()) == {"provisioned"}
        run_ids = {e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}
        assert len(run_ids) == 1
        state = _flow_run_state(prefect_api_url, run_ids.pop())
        assert state.type.value == "COMPLETED" and state.name == "Completed", state
        store.close()
    finally:
        site.lab.stop()


def test_a_postgresql_stop_past_the_bound_stops_the_run_naming_it_and_the_next_run_reads_back(
        tmp_path, own_pg, prefect_api_url):  # noqa: F811
    url = own_pg.url(own_pg.create_database())
    site = _site(tmp_path, url, "S", 22, state_retry_for="12s")
    log = tmp_path / "run.log"
    env = run_env(site, prefect_api_url, tmp_path / "home")
    try:
        proc = start_run(site, env, out=log)
        wait_for("6 pass-1 decisions", lambda: decisions(url) >= 6, proc, log=log)
        own_pg.stop_server("fast")
        stopped = time.monotonic()
        try:
            rc = proc.wait(120)
            out = log.read_text()
            assert rc == 2, out[-4000:]
            # the last word names the database (never its password) and the bound, and says what to do next
            last = out.strip().splitlines()[-1]
            assert last.startswith("Stopped: state database unavailable"), out[-3000:]
            assert f"127.0.0.1:{own_pg.port}" in last and "state_retry_for" in last, last
            assert f"amt-migrate run {site.inventory}" in out or "amt-migrate run" in last, last
            assert "unexpected error" not in out and "Traceback" not in out, out[-4000:]
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))  # the rest of a 30 s stop
        finally:
            own_pg.start_server()

        store = StateStore(url)
        truth = site.admin_all()
        # every host as it stood: what the store holds is what was written before the stop; activations that
        # happened while the database was away are the lab's alone, at most one per host in flight
        unrecorded = {n for n, d in truth.items() if len(lab_attempts(d)) != store.get("w", n).attempts}
        assert 1 <= len(unrecorded) <= 4, unrecorded  # max_concurrency 4 in flight at the stop
        for n in unrecorded:
            assert len(lab_attempts(truth[n])) == store.get("w", n).attempts + 1, n
        activated_unrecorded = {n for n in unrecorded if truth[n]["state"] == "provisioned"}
        assert activated_unrecorded, "no activation happened while the database was away: the test proves less"
        assert all(store.get("w", n).status == "pending" for n in activated_unrecorded)
        first_run = {e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}.pop()
        state = _flow_run_state(prefect_api_url, first_run)
        assert state.type.value == "FAILED" and state.name == "Stopped: state database unavailable", state

        assert start_run(site, env, out=log).wait(240) == 0, log.read_text()[-4000:]
        check_against_lab(store, "w", site.admin_all(), unrecorded=unrecorded)
        for n in activated_unrecorded:  # found by reading the server back, not provisioned again
            decided = [e for e in store.history([n], "w") if e.status_after == "provisioned"]
            assert decided[0].action == "observe", decided
        store.close()
    finally:
        site.lab.stop()


def test_a_sqlite_state_file_locked_by_another_process_is_a_clear_stop_and_the_next_run_finishes(
        tmp_path, prefect_api_url):  # noqa: F811
    site = _site(tmp_path, None, "L", 23, state_retry_for="4s")
    url = load_inventory(site.inventory).state_url
    log = tmp_path / "run.log"
    env = run_env(site, prefect_api_url, tmp_path / "home")
    try:
        proc = start_run(site, env, out=log)
        wait_for("4 pass-1 decisions", lambda: decisions(url) >= 4, proc, log=log)
        locker = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")  # a backup tool, a second program: holds the writers' lock
        try:
            rc = proc.wait(120)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        out = log.read_text()
        assert rc == 2, out[-4000:]
        last = out.strip().splitlines()[-1]
        assert last.startswith("Stopped: state database unavailable") and url in last, last
        assert "locked" in last and "unexpected error" not in out, out[-3000:]
        assert start_run(site, env, out=log).wait(240) == 0, log.read_text()[-4000:]
        store = StateStore(url)
        truth = site.admin_all()
        unrecorded = {n for n, d in truth.items() if len(lab_attempts(d)) != store.get("w", n).attempts}
        assert len(unrecorded) <= 4
        check_against_lab(store, "w", truth, unrecorded=unrecorded)
        store.close()
    finally:
        site.lab.stop()


def test_a_sqlite_state_file_whose_file_system_turns_read_only_is_a_clear_stop(tmp_path, prefect_api_url):  # noqa: F811
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) not installed")
    site = _site(tmp_path, None, "O", 24)
    url = load_inventory(site.inventory).state_url
    db = Path(url[len("sqlite:///"):])
    log = tmp_path / "run.log"
    env = run_env(site, prefect_api_url, tmp_path / "home")
    frozen: list[Path] = []
    try:
        proc = start_run(site, env, out=log)
        wait_for("4 pass-1 decisions", lambda: decisions(url) >= 4, proc, log=log)
        # writes through the open files now fail with EPERM, as on a file system remounted read-only (the
        # -shm index is memory-mapped: freezing it would be a SIGBUS, not what a read-only mount does to it)
        for f in (db, db.with_name(db.name + "-wal")):
            if subprocess.run(["chattr", "+i", str(f)], capture_output=True).returncode != 0:
                pytest.skip(f"chattr +i is not supported on {f.parent}")
            frozen.append(f)
        rc = proc.wait(120)
        out = log.read_text()
        assert rc == 2, out[-4000:]
        last = out.strip().splitlines()[-1]
        assert last.startswith("Stopped: state database unavailable") and url in last, last
        assert "read-only or failing file system" in last and "unexpected error" not in out, out[-3000:]
        for f in frozen:  # writable again: the next run finishes from where each host stood
            subprocess.run(["chattr", "-i", str(f)], check=True)
        frozen.clear()
        assert start_run(site, env, out=log).wait(240) == 0, log.read_text()[-4000:]
        store = StateStore(url)
        truth = site.admin_all()
        unrecorded = {n for n, d in truth.items() if len(lab_attempts(d)) != store.get("w", n).attempts}
        check_against_lab(store, "w", truth, unrecorded=unrecorded)
        assert len(unrecorded) <= 4
        store.close()
    finally:
        for f in frozen:
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        site.lab.stop()
