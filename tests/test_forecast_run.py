"""The forecast against a real run (issue 18): a served lab fleet whose clock is accelerated (AMT's window and
the client's retry are 30 s, standing for 24 h), a wave run by migrate_wave, a technician played by the test
at the forecast's visit times. Each host's forecast (made as of the run's start, from the inventory alone)
is held against what happened: the state store's provisioned time, or, for a host that provisions itself,
the lab's own record of its successful attempt.

Paths: pass 1 on a rate-limited server (1 s per attempt, one at a time: provisioning.rate 1/s); a renew in
the window pass 1 opened, then pass 2; no SSH, a lease whose T1 falls inside the window (healed at the
first retry) and one whose T1 comes later (healed at a later retry); two hosts for one technician at 1 visit
per 20 s.

Tolerance, stated: every host within TOL (30 s, one lab window) of its forecast. That much is the run's own
overhead, which the forecast does not model and which does not shrink with the lab's clock: discovery over
SSH (not measured before a first run), Prefect starting each stage's subflow and task runs, the report, each
rerun's flow start (in a real migration, seconds against windows of hours). Net of that overhead, measured
from the run itself, each mechanism matches within RESIDUAL (2 s): the server's pace, the client's own
renewal and retry counted from its first attempt, the technician's visits at the site's capacity.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.forecast import model as m
from tasks.forecast.build import StoreData, build_forecast
from tasks.inventory.model import load_inventory
from tasks.store.state import StateStore
from lab.server import LabServer
from tests.site_fixtures import DMT_PASSWORD, PASSWORD, Site, device, inventory_for, ran_to_its_end, write_fleet

TOL = 30.0  # one lab window (24 h in a real migration): the run's overhead, all told
RESIDUAL = 2.0  # seconds, net of that overhead
RERUN = 12.0  # a rerun's flow start-up and pass 2 on this machine
WINDOW = 30.0
runner = CliRunner()

SCOPES = [
    {"name": "hq", "subnet": "127.10.0.0/16", "domain_name": "contoso.com", "lease": "1h"},
    {"name": "quick", "subnet": "127.12.0.0/16", "domain_name": "contoso.com", "lease": "40s"},
    {"name": "slow", "subnet": "127.14.0.0/16", "domain_name": "contoso.com", "lease": "100s"},
    {"name": "wrong", "subnet": "127.13.0.0/16", "domain_name": "contoso.local", "lease": "1h"},
]
BAD = dict(dhcp="fabrikam.com", os_suffix="fabrikam.com")  # AMT and the OS hold an old suffix
NO_SSH = dict(BAD, faults=["ssh_auth"])
CASES = [  # name, address, device kwargs, inventory tags
    ("OK-1", "127.10.7.1", dict(dhcp="contoso.com"), []),
    ("OK-2", "127.10.7.2", dict(dhcp="contoso.com"), []),
    ("RENEW-1", "127.10.7.3", BAD, []),
    ("OK-3", "127.10.7.4", dict(dhcp="contoso.com"), []),
    ("SELF-Q", "127.12.7.1", NO_SSH, ["nossh"]),
    ("SELF-S", "127.14.7.1", NO_SSH, ["nossh"]),
    ("TECH-1", "127.13.7.1", NO_SSH, ["nossh", "site-a"]),
    ("TECH-2", "127.13.7.2", NO_SSH, ["nossh", "site-a"]),
]


def _site(tmp_path, monkeypatch) -> Site:
    """The fleet with this test's scopes, served; the inventory a lead would write for it."""
    devs = [device(n, a, **kw) for n, a, kw, _ in CASES]
    fleet_path = write_fleet(tmp_path, devs, window="30s", retry_interval="30s", latency={"provision": "1s"})
    fleet = yaml.safe_load(fleet_path.read_text())
    fleet["scopes"] = SCOPES
    fleet_path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    lab = LabServer(fleet_path, known_hosts=tmp_path / "known_hosts").start()
    waves = [{"name": "w", "hosts": ["*"], "max_concurrency": 1, "batch_size": 1,
              "remediation": ["dhcp_renew", "mebx"]}]
    data = inventory_for(lab, devs, waves, window="30s")
    data["dhcp_scopes"] = SCOPES
    data["window"] = {"interface_open": "30s", "retry_interval": "30s"}
    data["provisioning"]["rate"] = "1/s"
    data["technicians"] = {"site-a": "1/20s"}
    tags = {n: t for n, _, _, t in CASES}
    for h in data["hosts"]:
        h["tags"] = tags[h["name"]]
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for k, v in {"AMTMIG_SSH_KEY": str(lab.private_key_path), "AMTMIG_LEGACY_AMT_PASSWORD": PASSWORD,
                 "AMTMIG_DMT_PASSWORD": DMT_PASSWORD}.items():
        monkeypatch.setenv(k, v)
    return Site(lab, path, tmp_path)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _provisioned_in_store(store, wave="w") -> dict[str, float]:
    out = {}
    for e in store.history(wave=wave):
        if e.status_after == "provisioned" and e.host not in out:
            out[e.host] = e.at.timestamp()
    return out


def _technician(site, inventory, host, at):
    """The test as a technician at `host`: at the visit time, the PKI suffix set in the MEBx, the visit recorded,
    and a rerun of the work list's hosts (what the forecast assumes happens right after each visit)."""
    time.sleep(max(0.0, at - time.time()))
    httpx.post(f"{site.lab.http_url}/admin/devices/{host}/mebx", json={"trusted_suffix": "contoso.com"},
               timeout=10).raise_for_status()
    res = runner.invoke(app, ["mebx", "done", str(inventory), "--wave", "w", host])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["rerun", str(inventory), "--wave", "w", "--status", "needs_mebx", "--hosts", host, "--yes"])
    assert res.exit_code in (0, 4), res.output


def test_forecast_matches_what_the_run_and_the_fleet_then_do(tmp_path, monkeypatch, prefect_harness):
    from flows.migrate import migrate_wave

    site = _site(tmp_path, monkeypatch)
    try:
        assert ran_to_its_end(migrate_wave(str(site.inventory), "w", inventory_name="site", return_state=True))
        run_end = time.time()  # the report, and with it the technician's work list, is written
        inv = load_inventory(site.inventory)
        from tasks.store.reports import reports_dir

        report = (reports_dir(inv) / "w" / "report.html").read_text()
        assert "<h2>Forecast vs actual</h2><table id=forecast>" in report and 'href="forecast.html"' in report
        assert "<table id=whatifs>" in (reports_dir(inv) / "w" / "forecast.html").read_text()
        store = StateStore(inv.state_url)
        events = store.history(wave="w")
        start = min(e.at for e in events)
        # the forecast as it would have been made at the run's start: the inventory alone, SSH known missing
        fc = build_forecast(inv, "w", start, store=StoreData(), no_ssh=["tag:nossh"], whatifs=False)
        f = {h.name: h for h in fc.waves[0].hosts}
        assert {n: f[n].route for n in f} == {
            "OK-1": m.PASS1, "OK-2": m.PASS1, "OK-3": m.PASS1, "RENEW-1": m.REMOTE_FIX, "SELF-Q": m.SELF_HEAL,
            "SELF-S": m.SELF_HEAL, "TECH-1": m.TECHNICIAN, "TECH-2": m.TECHNICIAN}
        visits = {n: next(s.at for s in f[n].steps if s.what == "technician visit") for n in ("TECH-1", "TECH-2")}
        assert visits["TECH-2"] - visits["TECH-1"] == pytest.approx(20.0)  # 1 visit per 20 s at site-a
        # the run's own overhead up to its end (stage start-ups, discovery, the report), not forecast: the
        # technician gets the work list when the run ends, and visits at the forecast's pace from then
        f_end = next(s.at for s in f["TECH-1"].steps if s.what == "work list")
        late_start = run_end - f_end
        for n in ("TECH-1", "TECH-2"):
            _technician(site, site.inventory, n, visits[n] + late_start)
        healed = _wait_for_self_heal(site, ["SELF-Q", "SELF-S"], f)
        done = _provisioned_in_store(store)
        got = {**done, **healed}
        report = {n: (round(f[n].expected - start.timestamp(), 1), round(got[n] - start.timestamp(), 1)) for n in f}
        for n in f:  # every host within one lab window of its forecast (the overhead above included)
            assert abs(got[n] - f[n].expected) <= TOL, report
        _mechanisms(site, events, f, done, healed, late_start)
        _forecast_after_the_run(site, store, f)
        store.close()
    finally:
        site.lab.stop()


def _mechanisms(site, events, f, done, healed, late_start):
    """Net of the run's overhead, each mechanism as forecast, within RESIDUAL seconds."""
    # the rate: pass 1's eight attempts take the server ~7 s between the first and last completion (1 s each)
    p1 = {n: _first_attempt(site, n) for n, *_ in CASES}
    assert max(p1.values()) - min(p1.values()) == pytest.approx(7.0, abs=RESIDUAL)
    shift1 = min(p1.values()) - min(f[n].steps[0].at for n in f)  # discovery and the stage's start-up
    for n in ("OK-1", "OK-2", "OK-3"):
        assert done[n] == pytest.approx(f[n].expected + shift1, abs=RESIDUAL + 1.0), n  # + the store's write
    # the renew inside the window pass 1 opened: pass 2, once remediation is over
    assert [e.action for e in events if e.host == "RENEW-1" and e.stage == "remediate"][-1] == "dhcp_renew"
    assert "reopen-window" not in [e.action for e in events if e.host == "RENEW-1"]
    # the client's own renewal then its own retry, counted from the lab's first attempt: exactly as forecast
    for n in ("SELF-Q", "SELF-S"):
        f_p1 = f[n].steps[0].at
        assert f[n].earliest - f_p1 - 1.0 <= healed[n] - p1[n] <= f[n].latest - f_p1 + 1.0, n
        assert (healed[n] - p1[n]) / WINDOW == pytest.approx(round((healed[n] - p1[n]) / WINDOW), abs=0.05), n
    assert f["SELF-Q"].earliest == f["SELF-Q"].latest  # T1 (20 s) always inside the window: the first retry
    assert healed["SELF-Q"] - p1["SELF-Q"] == pytest.approx(WINDOW, abs=1.0)
    # the technician: visits 20 s apart, each host done within a rerun's start-up after its visit
    for n in ("TECH-1", "TECH-2"):
        assert 0 < done[n] - (f[n].expected + late_start) <= RERUN, n


def _first_attempt(site, name) -> float:
    return _ts(site.admin(name)["attempts"][0]["at"])


def _wait_for_self_heal(site, names, f) -> dict[str, float]:
    """The lab provisions these itself (renewal in a window, then its own retry); wait for them."""
    deadline = max(f[n].latest for n in names) + 2 * TOL
    out: dict[str, float] = {}
    while time.time() < deadline and len(out) < len(names):
        for n in names:
            a = site.admin(n)
            if a["state"] == "provisioned" and n not in out:
                out[n] = _ts(a["attempts"][-1]["at"])
                assert a["attempts"][-1]["source"] == "self-retry"
        time.sleep(1.0)
    assert set(out) == set(names), out
    return out


def _forecast_after_the_run(site, store, f):
    """The CLI after the run: recorded hosts replace predictions; the self-healed hosts are still on the work
    list in the store (it learns of them at the next run), and late against the forecast made at the start."""
    import json

    page = site.dir / "forecast.html"
    res = runner.invoke(app, ["forecast", str(site.inventory), "--wave", "w", "--json", "--no-ssh", "tag:nossh",
                              "--html", str(page)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    for n in ("OK-1", "RENEW-1", "TECH-2"):
        assert hosts[n]["route"] == "done" and hosts[n]["actual"] is True
        assert all(s["recorded"] for s in hosts[n]["steps"])
    assert hosts["SELF-Q"]["route"] == "self_heal" and hosts["SELF-Q"]["actual"] is False
    assert doc["waves"][0]["server"]["rate_source"] == "provisioning.rate 1/s"
    _screenshot(page)


def _screenshot(page):
    """The page after the run (forecast and recorded), as README shows it: out/screenshots/forecast.png."""
    import shutil
    import subprocess
    from pathlib import Path

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return
    out = Path(__file__).resolve().parent.parent / "out" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    profile = page.parent / "chromium-profile"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1300,1700",
                           "--virtual-time-budget=3000", f"--screenshot={out / 'forecast.png'}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
