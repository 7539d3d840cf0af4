"""The forecast (issue 18) against the lab's own fleet model on a manual clock: a client's own renewal and
retry, the what-ifs' savings, the technicians' capacity, the server's rate; the CLI's answers and errors.

The lab (lab/model.py) is the judge: it knows nothing of the forecast, and decides by its own rules when a
device that failed its first attempt provisions itself (renewal at half its lease inside AMT's window, then
its own retry)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from lab.clock import ManualClock
from tasks.forecast import model as m
from tasks.forecast.build import StoreData, build_forecast
from tasks.forecast.selfheal import first_heal, heal
from tasks.forecast.simulate import simulate
from tasks.forecast.whatif import candidates
from tasks.inventory.model import load_inventory

pytest.register_assert_rewrite("tests.lab_fixtures")
from tests.lab_fixtures import make_fleet  # noqa: E402

runner = CliRunner()
START = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


def dev(name, address, **kw):
    d = {"name": name, "address": address, "os": "windows", "amt_version": "11.8.50", "state": "pre",
         "trusted_suffix": "", "dhcp_suffix": "contoso.local", "domain_name": "", "os_suffix": "contoso.local",
         "interface_open": False, "legacy": None, "faults": []}
    d.update(kw)
    return d


def heal_in_lab(fleet, attempts: dict[str, float], horizon: float = 60 * 86400) -> dict[str, float | None]:
    """Each host attempted once at its time (what pass 1 does), then the lab's own clock-driven behaviour
    (half-lease renewals, self-retries) runs: when is each provisioned (None: not within the horizon)?"""
    clock = fleet.clock
    todo = sorted(attempts.items(), key=lambda kv: kv[1])
    end = max(attempts.values()) + horizon
    done: dict[str, float | None] = {n: None for n in attempts}
    while todo or any(v is None for v in done.values()):
        due = fleet.next_event_at()
        if todo and (due is None or todo[0][1] <= due):
            name, at = todo.pop(0)
            clock.set(max(at, clock.now()))
            fleet.tick()
            assert fleet.provision(name)["result"] == "failed"
            continue
        if due is None or due > end:
            break
        clock.set(max(due, clock.now()))
        fleet.tick()
        for n in attempts:
            d = fleet.device(n)
            if done[n] is None and d.state == "provisioned":
                done[n] = datetime.fromisoformat(d.attempts[-1]["at"].replace("Z", "+00:00")).timestamp()
    return done


# lease, window, retry (seconds): T1 inside the window; T1 past the first window (W = R: windows back to back);
# W shorter than R (gaps between windows); a lease longer than several retries
SCENARIOS = [(40, 30, 30), (200, 30, 30), (200, 10, 30), (8 * 86400, 86400, 86400), (8 * 86400, 6 * 3600, 86400)]


@pytest.mark.parametrize("lease,window,retry", SCENARIOS)
def test_a_clients_own_renewal_and_retry_match_the_lab(lease, window, retry):
    devices = [dev(f"WS-{i:04d}", f"127.12.0.{i}", scope="slow") for i in range(1, 9)]
    scopes = [{"name": "slow", "subnet": "127.12.0.0/16", "domain_name": "contoso.com", "lease": lease}]
    clock = ManualClock()
    fleet = make_fleet(*devices, clock=clock, window=window, retry_interval=retry, scopes=scopes)
    origin = clock.now()
    p1 = origin + 5
    names = [d["name"] for d in devices]
    first_due = {n: fleet.device(n).lease_obtained + lease / 2 for n in names}  # the lab's own lease ages
    lab = heal_in_lab(fleet, {n: p1 for n in names})
    rng = heal(p1, origin, lease, window, retry)
    for n in names:
        exact = first_heal(p1, first_due[n], lease, window, retry, 0.0)
        if exact is None:  # this lease age never meets a window: the forecast's range says it may never heal
            assert lab[n] is None and rng.latest is None, n
            continue
        assert lab[n] == pytest.approx(exact[0]), n
        assert rng.earliest - 1e-6 <= lab[n], n
        assert rng.latest is None or lab[n] <= rng.latest + 1e-6, n


def inventory(tmp_path, **over):
    """Four hosts, no SSH: two heal by themselves (scope heal), two need a technician (scope wrong, site-a)."""
    data = {
        "name": "fc",
        "provisioning": {"server": "lab", "url": "http://127.0.0.1:9", "certificate_suffix": "contoso.com",
                         "rate": "1/s"},
        "window": {"interface_open": "30s", "retry_interval": "30s"},
        "technicians": {"site-a": "1/20s"},
        "dhcp_scopes": [{"name": "heal", "subnet": "127.12.0.0/16", "domain_name": "contoso.com", "lease": "200s"},
                        {"name": "wrong", "subnet": "127.13.0.0/16", "domain_name": "contoso.local", "lease": "1h"}],
        "hosts": [
            {"name": "HEAL-1", "address": "127.12.0.1", "amt_version": "11.8.50", "os_suffix": "contoso.local"},
            {"name": "HEAL-2", "address": "127.12.0.2", "amt_version": "11.8.50", "os_suffix": "contoso.local"},
            {"name": "TECH-1", "address": "127.13.0.1", "amt_version": "11.8.50", "os_suffix": "contoso.local",
             "tags": ["site-a"]},
            {"name": "TECH-2", "address": "127.13.0.2", "amt_version": "11.8.50", "os_suffix": "contoso.local",
             "location": "site-a"},
            {"name": "OLD-1", "address": "127.12.0.9", "amt_version": "3.0.1"},
        ],
        "waves": [{"name": "w", "hosts": ["*"], "start": START.isoformat()}],
    }
    for k, v in over.items():
        data[k] = v
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def by_name(fc) -> dict:
    return {h.name: h for w in fc.waves for h in w.hosts}


def test_routes_times_and_the_technicians_capacity(tmp_path):
    fc = build_forecast(load_inventory(inventory(tmp_path)), store=StoreData())
    h = by_name(fc)
    t0 = START.timestamp()
    assert h["OLD-1"].route == m.NEVER and h["OLD-1"].expected is None
    # the server completes one attempt a second, in inventory order: pass 1 of the 4 hosts it attempts
    assert [h[n].steps[0].at - t0 for n in ("HEAL-1", "HEAL-2", "TECH-1", "TECH-2")] == [1, 2, 3, 4]
    for n in ("HEAL-1", "HEAL-2"):  # renewals every 100 s, windows back to back: healed at a retry
        assert h[n].route == m.SELF_HEAL and h[n].person is None
        assert (h[n].earliest - h[n].steps[0].at) % 30 == pytest.approx(0)
        assert h[n].earliest < h[n].expected < h[n].latest
    # both technician hosts join the work list when remediation starts (after pass 1: t0 + 4); one visit per 20 s
    assert h["TECH-1"].route == m.TECHNICIAN and h["TECH-2"].route == m.TECHNICIAN
    visits = sorted(s.at - t0 for n in ("TECH-1", "TECH-2") for s in h[n].steps if s.what == "technician visit")
    assert visits == [4, 24]
    assert [h[n].expected - t0 for n in ("TECH-1", "TECH-2")] == [5, 25]  # a rerun's pass 2: 1 s at 1/s
    w = fc.waves[0]
    assert w.quantile(1.0) is None and len(w.people) == 2
    assert w.quantile(0.4) == pytest.approx(t0 + 5)


def test_what_if_one_more_technician_visit_is_computed(tmp_path):
    fc = build_forecast(load_inventory(inventory(tmp_path)), store=StoreData())
    more = [x for x in fc.whatifs if x.kind == "technician"]
    assert len(more) == 1 and "site-a" in more[0].change and "1/20 s -> 2/20 s" in more[0].change
    assert more[0].hosts == 1 and more[0].host_days_saved == pytest.approx(10 / 86400)  # TECH-2: 24 s -> 14 s


def test_what_if_shorter_lease_saving_checked_on_the_lab(tmp_path):
    """The forecast's lease what-if against the lab fleet run twice, as is and with the change."""
    inv = load_inventory(inventory(tmp_path))
    fc = build_forecast(inv, store=StoreData())
    lease_if = next(x for x in fc.whatifs if x.kind == "lease")
    assert lease_if.change == "scope heal lease 3 min 20 s -> 15 s" and lease_if.host_days_saved > 0
    h = by_name(fc)
    actual = {}
    for lease in (200, 15):
        clock = ManualClock(START.timestamp())
        scopes = [{"name": "heal", "subnet": "127.12.0.0/16", "domain_name": "contoso.com", "lease": lease}]
        fleet = make_fleet(dev("HEAL-1", "127.12.0.1"), dev("HEAL-2", "127.12.0.2"), clock=clock, window=30,
                           retry_interval=30, scopes=scopes)
        assert h["HEAL-1"].steps[0].at < h["HEAL-2"].steps[0].at
        actual[lease] = heal_in_lab(fleet, {n: h[n].steps[0].at for n in ("HEAL-1", "HEAL-2")})
    saved = sum(actual[200][n] - actual[15][n] for n in actual[200]) / 86400
    assert saved >= 0
    # the forecast's range holds what the lab did, before and after the change
    for n in ("HEAL-1", "HEAL-2"):
        assert h[n].earliest <= actual[200][n] <= h[n].latest
    changed = next(w for w in candidates(fc) if w[1] == "lease")
    after = {o.name: o for w in simulate(fc.setup, changed[3], fc.states, fc.made_at) for o in w.hosts}
    for n in ("HEAL-1", "HEAL-2"):
        assert after[n].earliest <= actual[15][n] <= after[n].latest
        assert actual[15][n] == pytest.approx(after[n].expected)  # renewals every 7.5 s: the first retry, always
    # the what-if's saving is the mean over lease ages; the lab ran one age per host: within the range's width
    width = sum(h[n].latest - h[n].earliest for n in ("HEAL-1", "HEAL-2")) / 86400
    assert abs(lease_if.host_days_saved - saved) <= width


def test_no_ssh_what_if_and_option(tmp_path):
    """Hosts fixed by a renew over SSH: without SSH they wait for their own renewal (the what-if's risk)."""
    path = inventory(tmp_path, credentials={"ssh": {"user": "m", "key_env": "K"}},
                     hosts=[{"name": f"K-{i}", "address": f"127.12.0.{i}", "amt_version": "11.8.50",
                             "os_suffix": "contoso.local", "tags": ["kiosk"]} for i in range(1, 4)],
                     waves=[{"name": "w", "hosts": ["*"], "start": START.isoformat(),
                             "remediation": ["dhcp_renew", "mebx"]}])
    fc = build_forecast(load_inventory(path), store=StoreData())
    assert {h.route for h in fc.waves[0].hosts} == {m.REMOTE_FIX}
    risk = next(x for x in fc.whatifs if x.kind == "no_ssh")
    assert risk.change == "renew over SSH unavailable for tag kiosk" and risk.hosts == 3 and risk.host_days_saved < 0
    without = build_forecast(load_inventory(path), store=StoreData(), no_ssh=["tag:kiosk"])
    assert {h.route for h in without.waves[0].hosts} == {m.SELF_HEAL}


def test_a_server_rate_queue_is_shared_by_waves_in_start_order():
    setup = m.Setup(window=30, retry=30, rate=0.5, client_retries=False)
    ok = lambda n, w: m.HostIn(n, w, "reprovision", "provision", None, (), True)  # noqa: E731
    waves = [m.WaveIn("b", 100.0, (ok("B-1", "b"),)), m.WaveIn("a", 0.0, tuple(ok(f"A-{i}", "a") for i in range(60)))]
    out = {w.name: w for w in simulate(setup, waves)}
    assert out["a"].quantile(1.0) == 120.0  # 60 attempts at 2 s each
    assert out["b"].hosts[0].expected == 122.0  # wave b starts at 100 but waits for the server
    assert out["a"].attempts == 60 and out["a"].server_busy == 120.0


def test_inventory_rejects_bad_rates_with_their_line(tmp_path):
    path = inventory(tmp_path, technicians={"site-a": "often"},
                     provisioning={"server": "lab", "url": "http://127.0.0.1:9", "certificate_suffix": "contoso.com",
                                   "rate": "fast"})
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    lines = res.output.splitlines()
    text = path.read_text().splitlines()
    rate_line = next(i for i, t in enumerate(text, 1) if "fast" in t)
    tech_line = next(i for i, t in enumerate(text, 1) if "often" in t)
    assert f"{path}:{rate_line}: provisioning.rate: rate 'fast' is not like 6/day, 20/min, 3000/h or 2/20s" in lines
    assert f"{path}:{tech_line}: technicians.site-a: rate 'often' is not like 6/day, 20/min, 3000/h or 2/20s" in lines


def test_cli_forecast_json_csv_and_bad_input(tmp_path):
    path = inventory(tmp_path)
    res = runner.invoke(app, ["forecast", str(path), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["TECH-2"]["route"] == "technician" and hosts["TECH-2"]["person"] == "a technician at site-a"
    assert [s["what"] for s in hosts["TECH-2"]["steps"]] == ["pass 1", "remediation: mebx", "technician visit",
                                                              "pass 2 (rerun)"]
    assert doc["waves"][0]["need_a_person"] == ["TECH-1", "TECH-2"] and doc["waves"][0]["never"] == ["OLD-1"]
    assert doc["waves"][0]["server"]["rate_source"] == "provisioning.rate 1/s"
    assert {a["name"] for a in doc["assumptions"]} >= {"AMT window", "client retry", "DHCP renewal", "technicians"}
    res = runner.invoke(app, ["forecast", str(path), "--csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("host,wave,path,outcome,route,earliest")
    res = runner.invoke(app, ["forecast", str(path)])
    assert res.exit_code == 0 and "w (5 hosts): 50 % by 2026-01-05 08:" in res.stdout
    assert "what-ifs, most host-days saved first:" in res.stdout
    for bad, word in ((["--at", "2026-01-05T08:00"], "give a time zone"), (["--wave", "nope"], "no wave 'nope'"),
                      (["--no-ssh", "tag:a;b"], "a name glob"), (["--json", "--csv"], "choose one")):
        res = runner.invoke(app, ["forecast", str(path), *bad])
        assert res.exit_code == 2 and word in res.output, (bad, res.output)


def test_after_a_run_recorded_events_replace_predictions_and_late_hosts_are_named(tmp_path):
    """A store with one run's history: the recorded host keeps its recorded time and chain; a host done later
    than the forecast made at the run's start is late by the difference; one still waiting past that forecast is
    late by the time since; hosts not yet run are forecast from now."""
    from datetime import timedelta

    from tasks.store.state import StateStore

    path = inventory(tmp_path, state=f"sqlite:///{tmp_path / 'state.db'}")
    inv = load_inventory(path)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
    t0 = START + timedelta(seconds=2)
    times = iter([t0 + timedelta(seconds=s) for s in range(0, 1000)])
    import tasks.store.state as st
    real = st.utcnow
    st.utcnow = lambda: next(times)
    try:
        store.transition("w", "OLD-1", "unsupported", stage="pass1", action="skip", outcome="unsupported",
                         cause="unsupported_version")
        for _ in range(20):
            next(times)
        store.transition("w", "HEAL-1", "failed", stage="pass1", action="provision", outcome="failed",
                         cause="suffix_mismatch", attempted=True)
        store.transition("w", "HEAL-1", "provisioned", stage="pass1", action="observe", outcome="ok",
                         provisioned_in_pass=1)
    finally:
        st.utcnow = real
    events = store.history()
    store.close()
    from tasks.forecast.build import read_store

    now = START + timedelta(seconds=400)
    fc = build_forecast(inv, "w", now, store=read_store(inv))
    h = by_name(fc)
    heal1 = h["HEAL-1"]
    assert heal1.route == m.DONE and heal1.actual and heal1.expected == events[-1].at.timestamp()
    assert [s.what for s in heal1.steps] == ["pass1: provision", "pass1: observe"]
    assert all(s.actual for s in heal1.steps)
    # the forecast made at the run's start (its first event, t0): HEAL-1 by its first retry at the latest
    assert heal1.baseline is not None and heal1.late_by is None  # done 23 s after the start: early
    assert h["OLD-1"].route == m.NEVER and h["OLD-1"].actual
    # HEAL-2 and the technicians' hosts had no event: a run from now (as of 400 s) still to come
    assert h["HEAL-2"].steps[0].at >= now.timestamp()
    # late: done, at the start's forecast, by 5 s with the technician; still not done at 400 s: late by the difference
    tech = h["TECH-2"]
    assert tech.late_by == pytest.approx(now.timestamp() - tech.baseline)
    assert tech.baseline == pytest.approx(t0.timestamp() + 25)
    res = runner.invoke(app, ["forecast", str(path), "--at", now.isoformat()])
    assert res.exit_code == 0, res.output
    assert "late against the forecast made at w's start: " in res.stdout and "TECH-2 by 6 min" in res.stdout


def test_the_forecast_page_is_one_self_contained_file_that_filters_in_a_browser(tmp_path):
    import re
    import shutil
    import subprocess
    import time

    path = inventory(tmp_path)
    page = tmp_path / "forecast.html"
    res = runner.invoke(app, ["forecast", str(path), "--html", str(page)])
    assert res.exit_code == 0 and f"wrote {page}" in res.stdout, res.output
    text = page.read_text()
    assert "<svg" in text and 'id="done-chart"' in text and "<table id=waves>" in text and "<table id=whatifs>" in text
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing fetched from anywhere
    assert "one more technician visit per period at site-a" in text and "TECH-2" in text
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                           "--dump-dom", page.resolve().as_uri() + "#s=technician&sort=host&dir=d"],
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    body = done.stdout[done.stdout.index('<table id="hosts">'):]
    shown = [mm.group(2) for mm in re.finditer(r'<tr data-s="[^"]*"( hidden(?:="")?)?><td>([^<]+)</td>', body)
             if not mm.group(1)]
    assert shown == ["TECH-2", "TECH-1"]  # the technician's hosts only, Z to A


def test_plan_prints_each_waves_forecast_line_and_status_marks_late_hosts(tmp_path):
    path = inventory(tmp_path, state=f"sqlite:///{tmp_path / 'state.db'}")
    res = runner.invoke(app, ["plan", str(path), "--offline"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.startswith("forecast w (5 hosts): "))
    assert "50 % by 2026-01-05 08:0" in line and "90 % by never (without people)" in line
    assert "2 need a person, 1 never (unsupported firmware); server 4 attempts, 4 s busy at 3,600/h" in line
    doc = json.loads(runner.invoke(app, ["plan", str(path), "--offline", "--json"]).stdout)
    assert doc["forecast"][0]["wave"] == "w" and doc["forecast"][0]["need_a_person"] == ["TECH-1", "TECH-2"]
    # a run that started at 08:00:02 and has done nothing since: by now every host is past its forecast
    from tasks.store.state import StateStore

    store = StateStore(load_inventory(path).state_url)
    import tasks.store.state as st

    real = st.utcnow
    st.utcnow = lambda: START
    try:
        store.ensure_hosts("w", [("HEAL-1", "127.12.0.1")])
    finally:
        st.utcnow = real
    store.close()
    res = runner.invoke(app, ["status", str(path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[0]["host"] == "HEAL-1" and rows[0]["late_by_s"] > 0
    res = runner.invoke(app, ["status", str(path)])
    assert "late " in res.stdout and "1 host(s) late against the forecast made at their wave's start" in res.stdout


def test_the_live_view_shows_the_forecast_made_at_the_runs_start_against_what_was_reached():
    from flows.live import Snapshot, StageProgress, live_markdown

    t0 = START.timestamp()
    snap = Snapshot("inv", "w", "run", "pass1", {"pass1": StageProgress(3, 4, "running")},
                    {"provisioned": 3, "pending": 1}, {}, [], at=START,
                    forecast={"start": t0, 0.5: t0 + 60, 0.9: t0 + 3600, 1.0: None},
                    reached={0.5: datetime.fromtimestamp(t0 + 90, tz=timezone.utc)})
    md = live_markdown(snap)
    assert "## Forecast vs actual" in md
    assert "| 50 % | 2026-01-05 08:01:00 UTC (+1 min) | 2026-01-05 08:01:30 UTC (+1 min 30 s) |" in md
    assert "| 90 % | 2026-01-05 09:00:00 UTC (+1 h) | not yet |" in md
    assert "| 100 % | not without people | not yet |" in md


def test_what_if_no_ssh_loss_checked_on_the_lab(tmp_path):
    """The no-SSH what-if against the lab fleet run both ways: with SSH, a renew inside the window pass 1 opened
    and pass 2 (what the run does); without, the client's own renewal and retry."""
    path = inventory(tmp_path, credentials={"ssh": {"user": "m", "key_env": "K"}},
                     hosts=[{"name": f"K-{i}", "address": f"127.12.0.{i}", "amt_version": "11.8.50",
                             "os_suffix": "contoso.local", "tags": ["kiosk"]} for i in range(1, 4)],
                     waves=[{"name": "w", "hosts": ["*"], "start": START.isoformat(),
                             "remediation": ["dhcp_renew", "mebx"]}])
    fc = build_forecast(load_inventory(path), store=StoreData())
    risk = next(x for x in fc.whatifs if x.kind == "no_ssh")
    h = by_name(fc)
    names = ["K-1", "K-2", "K-3"]
    scopes = [{"name": "heal", "subnet": "127.12.0.0/16", "domain_name": "contoso.com", "lease": 200}]
    # with SSH: pass 1 at the forecast's times, the renew when remediation starts, pass 2 at the forecast's times
    clock = ManualClock(START.timestamp())
    fleet = make_fleet(*[dev(n, f"127.12.0.{i}") for i, n in enumerate(names, 1)], clock=clock, window=30,
                       retry_interval=30, scopes=scopes)
    for n in names:
        clock.set(h[n].steps[0].at)
        assert fleet.provision(n)["result"] == "failed"
    renew_at = next(s.at for s in h["K-1"].steps if s.what == "remediation: dhcp_renew")
    clock.set(renew_at)
    assert all(fleet.dhcp_renew(n)["amt_took"] for n in names)
    with_ssh = {}
    for n in names:
        clock.set(max(clock.now(), h[n].expected))
        assert fleet.provision(n)["result"] == "success"
        with_ssh[n] = clock.now()
    assert with_ssh == {n: pytest.approx(h[n].expected) for n in names}
    # without: the lab heals them by itself
    fleet2 = make_fleet(*[dev(n, f"127.12.0.{i}") for i, n in enumerate(names, 1)],
                        clock=ManualClock(START.timestamp()), window=30, retry_interval=30, scopes=scopes)
    without = heal_in_lab(fleet2, {n: h[n].steps[0].at for n in names})
    lost = sum(without[n] - with_ssh[n] for n in names) / 86400
    assert lost > 0 and risk.host_days_saved < 0
    changed = next(c for c in candidates(fc) if c[1] == "no_ssh")[3]
    after = {o.name: o for w in simulate(fc.setup, changed, fc.states, fc.made_at) for o in w.hosts}
    for n in names:
        assert after[n].earliest <= without[n] <= after[n].latest
    width = sum(after[n].latest - after[n].earliest for n in names) / 86400
    assert abs(-risk.host_days_saved - lost) <= width
