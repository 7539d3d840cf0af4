"""A worker's machine is lost mid-pass, for real: two `amt-migrate run`s of one wave share a PostgreSQL state
store; one runs as another machine (its own UTS namespace: `unshare --uts`, hostname lost-machine, so its
leases can't be freed by a pid check) and is killed with SIGKILL while it holds leases in pass 1.

The other worker takes the lost one's hosts only once their leases ran out (`outages.lease_ttl`), reads each
back and finishes it; no host is decided by both; the lost run, left "Running" on the Prefect server, is
marked Crashed with a message saying what happened.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from tasks.store.state import StateStore
from tests.outage_helpers import check_against_lab, count, decisions, fleet, missing_attempts, set_outages, \
    wait_for, wave
from tests.pg_fixture import pg_cluster, pg_url  # noqa: F401 - fixtures
from tests.site_fixtures import start_site
from tests.test_reliability_crash import ROOT, kill_group, prefect_api_url, run_env, start_run  # noqa: F401
from tests.test_outage_state_db import _flow_run_state

LOST = "lost-machine"


def _start_as_other_machine(site, env, log):
    cmd = ["unshare", "--uts", "sh", "-c", f'hostname {LOST} && exec "$0" "$@"', sys.executable, "-m", "flows.cli",
           "run", str(site.inventory), "--wave", "w"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _lost_run(url: str) -> str | None:
    """The flow-run id the lost machine's run marked itself with in the store."""
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            rows = con.execute(text("SELECT key, value FROM amtmig_meta WHERE key LIKE 'wave:w:run:%'")).all()
    except Exception:  # noqa: BLE001 - not created yet
        return None
    finally:
        engine.dispose()
    return next((k.split(":", 3)[3] for k, v in rows if v.startswith(LOST + ":")), None)


def test_a_lost_workers_hosts_are_taken_after_the_lease_ttl_and_none_is_decided_by_both(
        tmp_path, pg_url, prefect_api_url):  # noqa: F811
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--uts", "true"]).returncode != 0:
        pytest.skip("unshare --uts is not available here (needs root / CAP_SYS_ADMIN)")
    site = start_site(tmp_path, fleet("M", 24, 26), [wave()], window="90s", state_url=pg_url,
                      latency={"provision": "1500ms-2s", "renew": "200ms-300ms", "ssh": "10ms-30ms"})
    set_outages(site.inventory, lease_ttl="6s")
    lost_log, log = tmp_path / "lost.log", tmp_path / "survivor.log"
    lost = _start_as_other_machine(site, run_env(site, prefect_api_url, tmp_path / "home-lost"), lost_log)
    survivor = None
    try:
        wait_for("the lost machine's run to mark itself", lambda: _lost_run(pg_url) is not None, lost, log=lost_log)
        lost_id = _lost_run(pg_url)
        mine = f"SELECT count(*) FROM amtmig_events WHERE flow_run_id = '{lost_id}' AND stage = 'pass1'"
        # hosts the lost machine holds and has not answered yet: the work its death interrupts
        held = f"SELECT count(*) FROM amtmig_hosts WHERE lease_owner LIKE '{LOST}:%' AND status = 'pending'"
        survivor = start_run(site, run_env(site, prefect_api_url, tmp_path / "home"), out=log)  # both at work
        wait_for("the lost machine's first pass-1 answers", lambda: count(pg_url, mine) >= 2, lost, log=lost_log)
        wait_for("the lost machine to hold hosts it has not answered", lambda: count(pg_url, held) >= 1, lost,
                 log=lost_log)
        kill_group(lost)  # the machine is gone: no clean-up, no release, its leases stay behind
        engine = create_engine(pg_url)
        with engine.connect() as con:
            leased = {h: exp for h, exp in con.execute(text(
                f"SELECT host, lease_expires_at FROM amtmig_hosts WHERE lease_owner LIKE '{LOST}:%' "
                f"AND status = 'pending'")).all()}
        engine.dispose()
        assert leased, "the lost machine held no unanswered host when it was killed"
        decided_before = decisions(pg_url)
        assert decided_before < 24, "pass 1 was over at the kill: slow the lab down"

        assert survivor.wait(300) == 0, log.read_text()[-4000:]

        store = StateStore(pg_url)
        truth = site.admin_all()
        events = store.history(wave="w")
        # the lost machine's hosts were taken only once their leases had run out
        for host, expires in leased.items():
            took = [e for e in events if e.host == host and e.flow_run_id != lost_id and e.stage == "pass1"]
            assert took, (host, "never taken over")
            assert took[0].at >= expires, (host, took[0].at, expires)
        # no host decided by both workers in pass 1; the lost one's unrecorded attempts were at most those in flight
        for host in truth:
            runs = {e.flow_run_id for e in events if e.host == host and e.stage == "pass1"
                    and e.action in ("provision", "observe", "skip") and e.outcome != "not asked"}
            assert len(runs) == 1, (host, runs)
        unrecorded = missing_attempts(store, "w", truth)
        assert set(unrecorded) <= set(leased) and set(unrecorded.values()) <= {1}, (unrecorded, leased)
        statuses = check_against_lab(store, "w", truth, unrecorded=unrecorded)
        assert set(statuses.values()) == {"provisioned"}
        # the lost run was left Running by its dead process; the survivor said what became of it
        state = _flow_run_state(prefect_api_url, lost_id)
        assert state.type.value == "CRASHED" and "orphaned" in (state.message or ""), state
        store.close()
    finally:
        kill_group(lost)
        if survivor is not None and survivor.poll() is None:
            kill_group(survivor)
        site.lab.stop()
