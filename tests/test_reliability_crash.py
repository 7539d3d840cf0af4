"""kill -9 at several points of pass 1, of remediation and of pass 2, run the wave again each time: every
host ends where an uninterrupted run of an identical fleet ends, the lab never provisions a host after
its success, and the history of every host is whole.

The wave runs as `python -m flows.cli run` subprocesses pointed at the session's Prefect test server
(PREFECT_API_URL), each in its own session so SIGKILL takes the whole process group.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.site_fixtures import PASSWORD, device, start_site

ROOT = Path(__file__).resolve().parent.parent


# -- helpers shared with the other reliability modules ---------------------------------------------

@pytest.fixture(scope="module")
def prefect_api_url(prefect_harness) -> str:
    """The session's Prefect test server: subprocess runs talk to it instead of starting their own."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url and url.startswith("http"), url
    return url


def run_env(site, api_url: str, home: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO", "AMTMIG_SSH_KEY": str(site.lab.private_key_path),
        "AMTMIG_LEGACY_AMT_PASSWORD": PASSWORD,
    })
    env.update(extra)
    return env


def start_run(site, env: dict, wave: str = "w", out: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flows.cli", "run", str(site.inventory), "--wave", wave]
    sink = open(out, "ab") if out else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT if out else sink,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def stage_events(db: Path) -> dict[str, int]:
    """Events per stage, read-only (never takes the writers' lock)."""
    if not db.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return dict(con.execute("SELECT stage, count(*) FROM amtmig_events GROUP BY stage").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def history_is_whole(store: StateStore, wave: str, name: str, final_status: str) -> None:
    """Every status change chains from enrol (pending) to the final status: no event lost or torn."""
    events = store.history([name], wave)
    assert events[0].action == "enrol" and events[0].status_after == "pending", (name, events[0])
    status = "pending"
    for e in events[1:]:
        assert e.status_before == status, (name, e)
        status = e.status_after
    assert status == final_status, (name, status, final_status)


def lab_attempts(admin: dict) -> list[dict]:
    return [a for a in admin["attempts"] if a.get("source") != "self-retry"]


# -- the crash test --------------------------------------------------------------------------------

def _devices() -> list[dict]:
    devs = []
    for i in range(12):
        kind = i % 4
        kw = {0: dict(trusted="contoso.com"), 1: dict(dhcp="fabrikam.com"), 2: dict(dhcp="fabrikam.com", os="linux"),
              3: dict(dhcp="")}[kind]
        devs.append(device(f"C-{i:02d}", f"127.10.11.{i + 1}", **kw))
    devs += [device("C-STUCK", "127.10.11.50", dhcp="fabrikam.com", faults=["renew_ignored"]),
             device("C-DOWN", "127.10.11.51", faults=["down"]),
             device("C-OLD", "127.10.11.52", version="3.1.0"),
             device("C-SCOPE", "127.11.11.53", dhcp="contoso.local", os_suffix="contoso.local")]
    return devs


WAVE = [{"name": "w", "hosts": ["*"], "max_concurrency": 3, "batch_size": 3, "remediation": ["dhcp_renew", "mebx"]}]
LATENCY = {"provision": "250ms-400ms", "renew": "250ms-400ms", "ssh": "20ms-40ms"}
# stage, events this run wrote in that stage before its kill: several points per stage (the first
# event, mid-stage, late), each followed by a fresh run that must continue from where the store stands
KILLS = [("pass1", 1), ("pass1", 4), ("pass1", 4), ("remediate", 1), ("remediate", 6), ("remediate", 4),
         ("pass2", 1), ("pass2", 2)]


def _site(tmp: Path):
    return start_site(tmp, _devices(), WAVE, window="90s", latency=LATENCY)


def test_killed_in_each_stage_and_run_again_ends_like_an_uninterrupted_run(tmp_path, prefect_api_url):
    ref = _site(tmp_path / "reference")
    site = _site(tmp_path / "crashed")
    try:
        ref_run = start_run(ref, run_env(ref, prefect_api_url, tmp_path / "home-ref"), out=tmp_path / "ref.log")
        env = run_env(site, prefect_api_url, tmp_path / "home")
        db = Path(load_inventory(site.inventory).state_url[len("sqlite:///"):])
        killed = []
        for stage, after in KILLS:
            base = stage_events(db).get(stage, 0)
            proc = start_run(site, env, out=tmp_path / "crashed.log")
            deadline = time.monotonic() + 150
            while proc.poll() is None and time.monotonic() < deadline:
                seen = stage_events(db).get(stage, 0) - base
                if seen >= after:
                    kill_group(proc)
                    killed.append((stage, seen))
                    break
                time.sleep(0.05)
            else:
                kill_group(proc)
                pytest.fail(f"the run ended (rc={proc.returncode}) before {after} {stage} events: slow the lab down; "
                            f"killed so far: {killed}\n" + (tmp_path / "crashed.log").read_text()[-3000:])
        store = StateStore(f"sqlite:///{db}")
        assert store.counts("w").get("pending", 0) + store.counts("w").get("remediated", 0) >= 0
        final_run = start_run(site, env, out=tmp_path / "crashed.log")
        # both run to their end and leave hosts failed and for a technician: exit 4 (not 1, halted/failed)
        assert final_run.wait(240) == 4, (tmp_path / "crashed.log").read_text()[-4000:]
        assert ref_run.wait(240) == 4, (tmp_path / "ref.log").read_text()[-4000:]

        ref_store = StateStore(load_inventory(ref.inventory).state_url)
        want = {r.host: (r.status, r.cause, r.provisioned_in_pass) for r in ref_store.hosts("w")}
        got = {r.host: (r.status, r.cause, r.provisioned_in_pass) for r in store.hosts("w")}
        assert got == want, killed
        # the reference covers every ending, so the comparison means something
        assert {s for s, _, _ in want.values()} == {"provisioned", "needs_mebx", "failed", "unsupported"}

        truth = site.admin_all()
        for name, (status, _, _) in got.items():
            attempts = lab_attempts(truth[name])
            assert not any(a.get("after_success") for a in attempts), (name, attempts)
            assert (truth[name]["state"] == "provisioned") == (status == "provisioned"), name
            assert sum(a["result"] == "success" for a in attempts) == (status == "provisioned"), name
            # every attempt the store counted happened; at most one per kill happened unrecorded
            rec = store.get("w", name)
            assert rec.attempts <= len(attempts) <= rec.attempts + len(KILLS), (name, rec.attempts, len(attempts))
            history_is_whole(store, "w", name, status)
        # each run after a kill left its trace: four flow runs wrote events
        assert len({e.flow_run_id for e in store.history(wave="w") if e.flow_run_id}) == len(KILLS) + 1
    finally:
        site.lab.stop()
        ref.lab.stop()
