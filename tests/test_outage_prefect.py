"""The Prefect server goes away mid-pass, for real: a `prefect server start` of this module's own is stopped
while `amt-migrate run` works pass 1 and started again on the same port and database.

Within the client's retry budget (PREFECT_CLIENT_MAX_RETRIES, 2^n s apart) the run rides the restart through
and ends Completed. With the budget spent before the server is back, the run stops (exit 2, naming the
server); the hosts are as the store has them; `run` again finishes them, and marks the run the outage left
"Running" on the server as Crashed, saying what happened (Prefect OSS itself does that only through a
zombie-run automation). Interrupted when the store shows N pass-1 decisions, never after a fixed sleep.
"""

from __future__ import annotations


import pytest

from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.outage_helpers import check_against_lab, decisions, fleet, missing_attempts, wait_for, wave
from tests.prefect_server_fixture import start_server, stop_group
from tests.site_fixtures import PASSWORD, start_site
from tests.test_reliability_crash import start_run
from tests.test_outage_state_db import _flow_run_state


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-outage")
    holder = {}
    holder["proc"], holder["server"] = start_server(home)
    try:
        yield holder
    finally:
        stop_group(holder.get("proc"))


def _env(site, srv, **extra) -> dict:
    env = dict(srv.env, AMTMIG_SSH_KEY=str(site.lab.private_key_path), AMTMIG_LEGACY_AMT_PASSWORD=PASSWORD,
               PREFECT_LOGGING_LEVEL="INFO")
    env.update(extra)
    return env


def _restart(holder) -> None:
    srv = holder["server"]
    port = int(srv.api_url.rsplit(":", 1)[1].split("/")[0])
    holder["proc"], holder["server"] = start_server(srv.home, port=port)


def test_a_prefect_server_restart_mid_pass_is_ridden_through(tmp_path, server):
    srv = server["server"]
    site = start_site(tmp_path, fleet("F", 12, 27), [wave()], window="90s",
                      latency={"provision": "1500ms-2s", "renew": "200ms-300ms", "ssh": "10ms-30ms"})
    url = load_inventory(site.inventory).state_url
    log = tmp_path / "run.log"
    # 2+4+8+16+32+64 s: room for a server that takes a while to start on a busy machine
    proc = start_run(site, _env(site, srv, PREFECT_CLIENT_MAX_RETRIES="6"), out=log)
    try:
        wait_for("3 pass-1 decisions", lambda: decisions(url) >= 3, proc, log=log)
        stop_group(server["proc"])  # SIGTERM, then SIGKILL: the API is gone
        at_stop = decisions(url)
        _restart(server)  # the outage lasts as long as the server takes to start again
        assert proc.wait(300) == 0, log.read_text()[-4000:]
        assert at_stop < 12, "pass 1 was over before the server went away: slow the lab down"
        store = StateStore(url)
        assert set(check_against_lab(store, "w", site.admin_all()).values()) == {"provisioned"}
        run_ids = {e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}
        assert len(run_ids) == 1
        state = _flow_run_state(server["server"].api_url, run_ids.pop())
        assert state.type.value == "COMPLETED", state
        store.close()
    finally:
        if proc.poll() is None:
            stop_group(proc)
        site.lab.stop()


def test_a_run_that_outlives_its_prefect_client_retries_stops_and_the_next_run_says_what_became_of_it(
        tmp_path, server):
    srv = server["server"]
    site = start_site(tmp_path, fleet("G", 12, 28), [wave()], window="90s",
                      latency={"provision": "1500ms-2s", "renew": "200ms-300ms", "ssh": "10ms-30ms"})
    url = load_inventory(site.inventory).state_url
    log = tmp_path / "run.log"
    proc = start_run(site, _env(site, srv, PREFECT_CLIENT_MAX_RETRIES="1"), out=log)  # a 2 s budget
    try:
        wait_for("3 pass-1 decisions", lambda: decisions(url) >= 3, proc, log=log)
        stop_group(server["proc"])
        try:
            rc = proc.wait(180)
        finally:
            _restart(server)
        out = log.read_text()
        assert rc == 2, out[-4000:]
        # its last word (Prefect's own background services may still log after it, on their way out)
        said = [ln for ln in out.splitlines() if ln.startswith("error: Stopped: Prefect server")]
        assert len(said) == 1 and srv.api_url in said[0], out[-3000:]
        assert f"amt-migrate run {site.inventory} --wave w" in said[0], said
        store = StateStore(url)
        first = {e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}
        assert len(first) == 1
        first_id = first.pop()
        left = _flow_run_state(server["server"].api_url, first_id)
        assert not left.is_final(), left  # what Prefect itself leaves: a run still "Running"
        # the hosts are as the store has them: nothing it says contradicts the lab
        truth = site.admin_all()
        unrecorded = missing_attempts(store, "w", truth)
        assert set(unrecorded.values()) <= {1} and len(unrecorded) <= 4, unrecorded

        env = _env(site, server["server"])
        assert start_run(site, env, out=log).wait(300) == 0, log.read_text()[-4000:]
        statuses = check_against_lab(store, "w", site.admin_all(), unrecorded=unrecorded)
        assert set(statuses.values()) == {"provisioned"}
        state = _flow_run_state(server["server"].api_url, first_id)
        assert state.type.value == "CRASHED" and "orphaned" in (state.message or ""), state
        store.close()
    finally:
        if proc.poll() is None:
            stop_group(proc)
        site.lab.stop()
