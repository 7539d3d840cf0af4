"""Waves as an operator runs them: a real `prefect server start`, `amt-migrate schedule`, a process worker.

One server, one lab site and one worker for the module (the server costs 10-25 s to start here).
The worker's flow runs are separate processes: they reach the lab (served in this process) over
loopback and get the lab's SSH key and legacy password from the worker's environment, as a real
worker gets them from its own. Every check reads the Prefect API or the state store, and headless
Chromium renders the flow run's page so a person can look at the screenshot afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
import yaml

from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from tests.prefect_server_fixture import ROOT, PrefectServer, prefect_server  # noqa: F401 - the fixture
from tests.site_fixtures import PASSWORD, device, start_site

POOL = "amt-test"
INV = "site"
LATER = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=2)
SCREENSHOTS = ROOT / "out" / "screenshots"

# host -> (device kwargs, expected status, expected provisioned_in_pass)
NOW = {
    "N-MATCH": (dict(trusted="sales.contoso.com"), "provisioned", 1),
    "N-MISMATCH": (dict(dhcp="fabrikam.com"), "provisioned", 2),
    "N-OLD": (dict(version="2.6.3", trusted="contoso.com"), "unsupported", None),
    "N-SCOPE": (dict(dhcp="contoso.local", os_suffix="contoso.local"), "needs_mebx", None),
}
GATED = {
    "G-MATCH": (dict(trusted="contoso.com"), "provisioned", 1),
    "G-MISMATCH": (dict(dhcp="fabrikam.com"), "provisioned", 2),
}
DEFERRED = {
    "D-MATCH": (dict(trusted="contoso.com"), "provisioned", 1),
    "D-MISMATCH": (dict(dhcp="fabrikam.com"), "remediated", None),
}
LATER_HOSTS = {"L-1": (dict(trusted="contoso.com"), "pending", None)}

ADDRESSES = {}
for _i, _name in enumerate([*NOW, *GATED, *DEFERRED, *LATER_HOSTS]):
    ADDRESSES[_name] = f"127.11.5.{_i + 1}" if _name == "N-SCOPE" else f"127.10.5.{_i + 1}"

WAVES = [
    {"name": "now", "hosts": ["N-*"], "batch_size": 2, "max_concurrency": 4, "remediation": ["dhcp_renew", "mebx"]},
    {"name": "later", "hosts": ["L-*"], "start": LATER.isoformat().replace("+00:00", "Z")},
    {"name": "gated", "hosts": ["G-*"], "gate": True, "gate_timeout": "10m", "remediation": ["dhcp_renew", "mebx"]},
    {"name": "deferred", "hosts": ["D-*"], "pass2_after": "1h", "remediation": ["dhcp_renew", "mebx"]},
]


# -- fixtures: the site, the deployments, a worker --------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    devs = [device(n, ADDRESSES[n], **kw) for n, (kw, _, _) in {**NOW, **GATED, **DEFERRED, **LATER_HOSTS}.items()]
    s = start_site(tmp, devs, WAVES, window="5m", name=INV)
    # the lab answers SSH from this (busy) test process: on a loaded CI box a 3 s connect timeout
    # turns a suffix mismatch into "unreachable", which no remediation takes
    data = yaml.safe_load(s.inventory.read_text())
    data["credentials"]["ssh"].update(connect_timeout="20s", command_timeout="30s")
    s.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    yield s
    s.lab.stop()


@pytest.fixture(scope="module")
def deployed(site, prefect_server: PrefectServer):
    """`amt-migrate schedule INVENTORY --pool P` as a lead runs it, then one worker (limit 3) on the pool."""
    done = subprocess.run([sys.executable, "-m", "flows.cli", "schedule", str(site.inventory), "--pool", POOL],
                          cwd=ROOT, env=prefect_server.env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    secrets = {"AMTMIG_SSH_KEY": str(site.lab.private_key_path), "AMTMIG_LEGACY_AMT_PASSWORD": PASSWORD}
    prefect_server.start_worker(POOL, limit=3, extra_env=secrets)
    return done.stdout


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _deployments() -> dict:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with _client() as c:
        deps = c.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[f"inventory:{INV}"])))
    return {d.name: d for d in deps}


def _flow_runs(deployment_id: UUID, states: list[str] | None = None) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    flt = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))) if states else None
    with _client() as c:
        return c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                flow_run_filter=flt)


def _trigger(wave: str):
    from prefect.deployments import run_deployment

    return run_deployment(f"migrate-wave/{INV}-{wave}", timeout=0, as_subflow=False)


def _wait(server: PrefectServer, run_id: UUID, *, until=lambda s: s.is_final(), timeout: float = 300):
    deadline = time.monotonic() + timeout
    with _client() as c:
        while True:
            fr = c.read_flow_run(run_id)
            if fr.state and until(fr.state):
                return fr
            if time.monotonic() > deadline:
                pytest.fail(f"flow run {fr.name} still {fr.state and fr.state.name} after {timeout}s\n{server.logs()}")
            time.sleep(1)


def _store(site) -> StateStore:
    return StateStore(load_inventory(site.inventory).state_url)


def _assert_hosts(site, wave: str, expected: dict) -> None:
    store = _store(site)
    got = {r.host: (r.status, r.provisioned_in_pass) for r in store.hosts(wave)}
    want = {n: (st, p) for n, (_, st, p) in expected.items()}
    wrong = sorted(h for h in got if got[h] != want.get(h))
    history = "\n".join(f"{e.at:%H:%M:%S} {e.host} {e.stage} {e.action} {e.outcome} {e.status_before}->{e.status_after} "
                        f"{e.cause or ''} {e.evidence}" for e in store.history(wrong + ["*"], wave))
    assert got == want, history


def _artifact_keys(run_id: UUID) -> dict[str, object]:
    """The keyed artifacts of a wave's run: the stages are subflows, so they belong to its child runs."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    with _client() as c:
        runs = [run_id] + [r.id for r in c.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])))]
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=runs)))
    return {a.key: a for a in arts if a.key}


# -- the tests ----------------------------------------------------------------------------------------

def test_schedule_registers_one_deployment_per_wave_on_the_pool(site, deployed):
    deps = _deployments()
    assert set(deps) == {f"{INV}-{w['name']}" for w in WAVES}, deployed
    for w in WAVES:
        d = deps[f"{INV}-{w['name']}"]
        assert d.work_pool_name == POOL
        assert d.parameters == {"inventory": str(site.inventory.resolve()), "wave": w["name"], "inventory_name": INV}
        assert d.entrypoint == "flows/migrate.py:migrate_wave"
        assert bool(d.schedules) == ("start" in w), d.schedules
    assert f"{INV}-later: scheduled for {LATER.isoformat()}" in deployed
    assert f"{INV}-now: no schedule" in deployed
    # the wave with a start is a scheduled run at that start, once; the others have none
    deadline = time.monotonic() + 30
    while not (scheduled := _flow_runs(deps[f"{INV}-later"].id, ["SCHEDULED"])) and time.monotonic() < deadline:
        time.sleep(1)
    assert [r.expected_start_time for r in scheduled] == [LATER]
    for w in ("now", "gated", "deferred"):
        assert _flow_runs(deps[f"{INV}-{w}"].id) == []


def test_a_wave_run_by_the_worker_ends_every_host_where_expected(site, deployed, prefect_server, tmp_path):
    run = _trigger("now")
    fr = _wait(prefect_server, run.id)
    assert fr.state.is_failed(), f"{fr.state}\n{prefect_server.logs()}"
    # not a green "Completed" over a host left for the technician: red, and the state's name says so
    assert fr.state.name == "Completed with 1 host for a technician", fr.state.name
    assert fr.state.message.startswith("2 of 4 provisioned; 1 unsupported; 1 for a technician"), fr.state.message
    _assert_hosts(site, "now", NOW)
    truth = site.admin_all()
    assert truth["N-OLD"]["attempts"] == [] and truth["N-MISMATCH"]["state"] == "provisioned"
    keys = _artifact_keys(run.id)
    assert {f"{INV}-now-run-live", f"{INV}-now-summary", f"{INV}-now-hosts", f"{INV}-now-pass1-progress", f"{INV}-now-pass2-progress",
            f"{INV}-now-mebx-worklist"} <= set(keys), sorted(keys)
    assert keys[f"{INV}-now-pass1-progress"].data == 100.0

    # what the operator sees: the flow run's page, rendered by a real browser
    shot = _chromium_screenshot(prefect_server, f"/runs/flow-run/{run.id}", tmp_path / "flow-run.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOTS / "flow-run-now.png"
    shutil.copyfile(shot, kept)
    print(f"\nscreenshot of flow run {fr.name}: {shot} (copy: {kept})")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = _chromium_dom(prefect_server, f"/runs/flow-run/{run.id}", tmp_path)
    assert "Completed with 1 host for a technician" in dom, dom[-3000:]  # the badge a person sees
    # the live view is on the wave's own run, and tells the story
    live = keys[f"{INV}-now-run-live"]
    assert live.flow_run_id == run.id
    shot = _chromium_screenshot(prefect_server, f"/artifacts/artifact/{live.id}", tmp_path / "live.png")
    shutil.copyfile(shot, SCREENSHOTS / "live-now-end.png")
    dom = _chromium_dom(prefect_server, f"/artifacts/artifact/{live.id}", tmp_path)
    for seen in ("3 of 4 hosts done", "pass 2", "N-SCOPE", "Windows closing soonest", "a technician enters"):
        assert seen in dom, (seen, dom[-3000:])
    # the events automations match on, read back from the server's event API
    events = _events(prefect_server, "amt-migrate.")
    names = [(e["event"], e["resource"].get("amt-migrate.host") or e["resource"].get("amt-migrate.wave"))
             for e in events if e["resource"].get("amt-migrate.wave") == "now"]
    assert ("amt-migrate.wave.started", "now") in names and ("amt-migrate.wave.finished", "now") in names, names
    assert ("amt-migrate.host.needs-technician", "N-SCOPE") in names, names
    finished = next(e for e in events if e["event"] == "amt-migrate.wave.finished"
                    and e["resource"]["amt-migrate.wave"] == "now")
    assert finished["resource"]["prefect.resource.id"] == f"amt-migrate.wave.{INV}.now"
    assert finished["payload"]["state"] == "Completed with 1 host for a technician"
    tech = next(e for e in events if e["event"] == "amt-migrate.host.needs-technician")
    assert tech["resource"]["amt-migrate.cause"] == "dhcp_scope_wrong" and tech["payload"]["enter_suffix"] == "contoso.com"
    # the report a lead forwards, as a browser shows it from the file
    report = load_inventory(site.inventory).state_url[len("sqlite:///"):]
    report = Path(report).parent / "reports" / "now" / "report.html"
    dom = _chromium_file(report, tmp_path, "--dump-dom").stdout
    assert 'id="status-chart"' in dom and "<svg" in dom and "N-SCOPE" in dom and ">2</b>" in dom, dom[:3000]
    assert 'id="shown">4<' in dom  # the filter's script ran: every host shown
    _chromium_file(report, tmp_path, f"--screenshot={SCREENSHOTS / 'report-now.png'}")
    # the artifacts belong to the stage subflows, so the run's own Artifacts tab is empty: the
    # operator finds them under Artifacts (latest per key) and on each artifact's page
    # the list's cards come after its count, sometimes after a 30 s virtual-time budget: ask again, longer
    for budget in (30000, 60000, 90000):
        dom = _chromium_dom(prefect_server, "/artifacts", tmp_path, budget_ms=budget)
        missing = [key for key in keys if key not in dom]
        if not missing:
            break
    assert not missing, (missing, dom[-3000:])
    summary = keys[f"{INV}-now-summary"]
    shot = _chromium_screenshot(prefect_server, f"/artifacts/artifact/{summary.id}", tmp_path / "summary.png")
    shutil.copyfile(shot, SCREENSHOTS / "summary-now.png")
    dom = _chromium_dom(prefect_server, f"/artifacts/artifact/{summary.id}", tmp_path)
    assert "2 of 4 hosts provisioned" in dom and "N-SCOPE" in dom, dom[-3000:]
    print(f"summary artifact: {SCREENSHOTS / 'summary-now.png'}")


# -- headless Chromium ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(server: PrefectServer, path: str, tmp: Path, *args: str, budget_ms: int = 15000,
              timeout: float = 240) -> subprocess.CompletedProcess:
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install chromium): the UI check needs a browser")
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1800",
           f"--virtual-time-budget={budget_ms}", *args, f"{server.url}{path}"]
    # its own session, so a hung renderer is killed with the browser
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        from tests.prefect_server_fixture import stop_group

        stop_group(proc, grace=2)
        pytest.fail(f"chromium did not finish rendering {path} in {timeout} s")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _chromium_screenshot(server: PrefectServer, path: str, out: Path, budget_ms: int = 15000) -> Path:
    done = _chromium(server, path, out.parent, f"--screenshot={out}", budget_ms=budget_ms)
    assert out.exists(), done.stderr[-2000:]
    return out


def _chromium_file(path: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """A local file (report.html) as a browser opens it from an e-mail: no server at all."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed")
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--window-size=1300,1600", "--virtual-time-budget=5000", *args,
           path.resolve().as_uri()]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, start_new_session=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _events(server: PrefectServer, prefix: str) -> list[dict]:
    """POST /api/events/filter, as an automation's author would check what the wave emits."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        r = httpx.post(f"{server.api_url}/events/filter", timeout=30,
                       json={"filter": {"event": {"prefix": [prefix]}, "order": "ASC"}, "limit": 50})  # the API pages by 50
        r.raise_for_status()
        events = r.json()["events"]
        if any(e["event"].endswith("finished") or e["event"].endswith("halted") for e in events) or \
                time.monotonic() > deadline:
            return events
        time.sleep(1)


def _chromium_dom(server: PrefectServer, path: str, tmp: Path, budget_ms: int = 15000) -> str:
    done = _chromium(server, path, tmp, "--dump-dom", budget_ms=budget_ms)
    assert done.returncode == 0 and done.stdout, done.stderr[-2000:]
    return done.stdout


# -- between the passes: the go/no-go gate and pass 2 later -------------------------------------------

def test_a_gated_wave_pauses_for_go_no_go_and_runs_pass2_on_go(site, deployed, prefect_server, tmp_path):
    from prefect.flow_runs import resume_flow_run

    run = _trigger("gated")
    fr = _wait(prefect_server, run.id, until=lambda s: s.is_paused() or s.is_final())
    assert fr.state.is_paused(), f"{fr.state}\n{prefect_server.logs()}"
    # paused after remediation: pass 2 has not touched the remediated host yet
    _assert_hosts(site, "gated", {"G-MATCH": GATED["G-MATCH"], "G-MISMATCH": ({}, "remediated", None)})
    gate = _artifact_keys(run.id)[f"{INV}-gated-gate"]
    assert "1 remediated host(s)" in gate.data and "Resume" in gate.data
    # mid-run: the wave's live view says where it stands while it waits for the go/no-go
    live = _artifact_keys(run.id)[f"{INV}-gated-run-live"]
    assert live.flow_run_id == run.id
    assert "| remediation | 1 of 1 hosts (100%) | done |" in live.data and "| pass 2 | 0 of 0 hosts | not started |" \
        in live.data, live.data
    if CHROMIUM:  # what the operator answers on: the paused run's page with its Resume button
        shot = _chromium_screenshot(prefect_server, f"/runs/flow-run/{run.id}", tmp_path / "paused.png")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / "flow-run-gated-paused.png")
        print(f"\nscreenshot of the paused run: {SCREENSHOTS / 'flow-run-gated-paused.png'}")
        shot = _chromium_screenshot(prefect_server, f"/artifacts/artifact/{live.id}", tmp_path / "live-mid.png")
        shutil.copyfile(shot, SCREENSHOTS / "live-gated-mid-run.png")
        dom = _chromium_dom(prefect_server, f"/artifacts/artifact/{live.id}", tmp_path)
        assert "1 of 2 hosts done" in dom and "remediated" in dom, dom[-3000:]
    resume_flow_run(run.id, run_input={"go": True, "note": "change ticket 4711"})
    fr = _wait(prefect_server, run.id)
    assert fr.state.is_completed(), f"{fr.state}\n{prefect_server.logs()}"
    assert (fr.state.name, fr.state.message) == ("Completed", "2 of 2 provisioned")
    _assert_hosts(site, "gated", GATED)
    [answer] = [e for e in _store(site).history(wave="gated") if e.stage == "gate"]
    assert (answer.outcome, answer.evidence["note"], answer.flow_run_id) == ("go", "change ticket 4711", str(run.id))


def test_pass2_after_schedules_one_later_run_of_the_wave(site, deployed, prefect_server):
    from prefect.states import Scheduled

    dep = _deployments()[f"{INV}-deferred"]
    before = datetime.now(timezone.utc)
    first = _wait(prefect_server, _trigger("deferred").id)
    assert first.state.is_completed(), f"{first.state}\n{prefect_server.logs()}"
    assert "1 of 2 provisioned; pass 2 scheduled for" in first.state.message
    _assert_hosts(site, "deferred", DEFERRED)
    [later] = _flow_runs(dep.id, ["SCHEDULED"])
    assert later.idempotency_key == f"{INV}-deferred-pass2-1"
    assert later.parameters == {**dep.parameters, "from_stage": "pass2"}
    assert timedelta(minutes=59) < later.expected_start_time - before < timedelta(minutes=65)
    assert "pass2" in later.tags

    # the wave run again before pass 2 is due: the same scheduled run, not a second one
    again = _wait(prefect_server, _trigger("deferred").id)
    assert again.state.is_completed(), f"{again.state}\n{prefect_server.logs()}"
    assert [r.id for r in _flow_runs(dep.id, ["SCHEDULED"])] == [later.id]
    assert later.name in again.state.message

    # brought forward, the scheduled run is pass 2 alone: the remediated host is provisioned in pass 2
    with _client() as c:
        c.set_flow_run_state(later.id, Scheduled(scheduled_time=datetime.now(timezone.utc)), force=True)
    done = _wait(prefect_server, later.id)
    assert done.state.is_completed(), f"{done.state}\n{prefect_server.logs()}"
    _assert_hosts(site, "deferred", {**DEFERRED, "D-MISMATCH": ({}, "provisioned", 2)})
    stages = {e.stage for e in _store(site).history(wave="deferred") if e.flow_run_id == str(later.id)}
    assert stages == {"pass2"}, stages


def test_scheduling_again_follows_the_inventory(site, deployed, prefect_server):
    """A moved start moves the scheduled run; a removed start removes the schedule and its run."""
    from typer.testing import CliRunner

    from flows.cli import app

    data = yaml.safe_load(site.inventory.read_text())
    moved = LATER + timedelta(days=1)
    data["waves"][1]["start"] = moved.isoformat().replace("+00:00", "Z")
    site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    dep_id = _deployments()[f"{INV}-later"].id
    res = CliRunner().invoke(app, ["schedule", str(site.inventory), "--pool", POOL, "--wave", "later"])
    assert res.exit_code == 0, res.output
    deadline = time.monotonic() + 30
    while [r.expected_start_time for r in _flow_runs(dep_id, ["SCHEDULED"])] != [moved]:
        assert time.monotonic() < deadline, [r.expected_start_time for r in _flow_runs(dep_id, ["SCHEDULED"])]
        time.sleep(1)
    assert len(_deployments()[f"{INV}-later"].schedules) == 1

    del data["waves"][1]["start"]
    site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    res = CliRunner().invoke(app, ["schedule", str(site.inventory), "--pool", POOL, "--wave", "later"])
    assert res.exit_code == 0 and "no schedule" in res.output, res.output
    assert _deployments()[f"{INV}-later"].schedules == []
    deadline = time.monotonic() + 30  # the server drops the schedule's runs on its own time, as it makes them
    while _flow_runs(dep_id, ["SCHEDULED"]):
        assert time.monotonic() < deadline, _flow_runs(dep_id, ["SCHEDULED"])
        time.sleep(1)
