"""No silent wrong answers (issue 13): the CLI a lead uses the morning after a wave, against a real store
and the lab. Wrong questions are errors, reruns say what they will do, technician hand-offs hold, a run's own
missing infrastructure stops it before any host is touched."""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app, window_text
from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Status
from tasks.rules.selection import start_stage, wants
from tasks.store.state import StateStore, utcnow
from tests.site_fixtures import device, start_site

runner = CliRunner()

INVENTORY = {
    "name": "good",
    "provisioning": {"server": "lab", "url": "http://127.0.0.1:9", "certificate_suffix": "contoso.com"},
    "hosts": [{"name": n, "address": f"10.0.0.{i + 1}", "amt_version": "11.8.50", "tags": ["bldg-a", "floor-2"]}
              for i, n in enumerate(["WS-Auth", "WS-Mis", "WS-Mebx", "WS-Rem", "WS-Ok"])],
    "waves": [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew", "mebx"]}],
}


def _store_with_answers(tmp_path):
    """An inventory and its store after a wave: one host per answer a lead meets the next morning."""
    inv_path = tmp_path / "good.yaml"
    inv_path.write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    inv = load_inventory(inv_path)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
    closes = utcnow() + timedelta(hours=3, minutes=12, seconds=30)
    t = store.transition
    t("w", "WS-Auth", Status.FAILED, stage="pass1", action="provision", outcome="failed", cause="auth_failed")
    t("w", "WS-Mis", Status.FAILED, stage="pass1", action="provision", outcome="failed", cause="suffix_mismatch",
      window_closes_at=closes)
    t("w", "WS-Mebx", Status.FAILED, stage="pass1", action="provision", outcome="failed", cause="suffix_mismatch")
    t("w", "WS-Mebx", Status.REMEDIATING, stage="remediate", action="start", outcome="ok")
    t("w", "WS-Mebx", Status.NEEDS_MEBX, stage="remediate", action="mebx", outcome="work list",
      cause="suffix_mismatch", window_closes_at=utcnow() - timedelta(hours=2, minutes=1))
    t("w", "WS-Rem", Status.FAILED, stage="pass1", action="provision", outcome="failed", cause="suffix_blank")
    t("w", "WS-Rem", Status.REMEDIATING, stage="remediate", action="start", outcome="ok")
    t("w", "WS-Rem", Status.REMEDIATED, stage="remediate", action="dhcp_renew", outcome="unverified",
      evidence={"unverified": True})
    t("w", "WS-Ok", Status.PROVISIONED, stage="pass1", action="provision", outcome="ok", provisioned_in_pass=1)
    return inv_path, store


# -- wrong questions are errors ------------------------------------------------------------------------

@pytest.mark.parametrize("args, listed", [
    (["--status", "faild"], "needs_mebx"),
    (["--cause", "auth_fail"], "auth_failed"),
    (["--wave", "wave-9"], "w"),
])
def test_status_refuses_unknown_filter_values_listing_valid_ones(tmp_path, args, listed):
    inv, _ = _store_with_answers(tmp_path)
    res = runner.invoke(app, ["status", str(inv), *args])
    assert res.exit_code == 2, res.output
    assert "choose from" in res.stderr and listed in res.stderr


def test_rerun_refuses_unknown_from_status_cause_and_wave(tmp_path):
    inv, _ = _store_with_answers(tmp_path)
    for args, listed in ((["--from", "pass3"], "discovery, pass1, remediate, pass2"),
                         (["--status", "broken"], "remediation_failed"),
                         (["--cause", "nope"], "server_error")):
        res = runner.invoke(app, ["rerun", str(inv), "--wave", "w", *args, "--dry-run"])
        assert res.exit_code == 2 and listed in res.stderr, (args, res.output)
    res = runner.invoke(app, ["rerun", str(inv), "--wave", "nope", "--dry-run"])
    assert res.exit_code == 2 and "choose from w" in res.stderr and "no wave 'nope'" in res.stderr


def test_json_and_csv_together_is_an_error(tmp_path):
    inv, _ = _store_with_answers(tmp_path)
    for cmd in (["status", str(inv)], ["plan", str(inv), "--offline"]):
        res = runner.invoke(app, [*cmd, "--json", "--csv"])
        assert res.exit_code == 2 and "--json and --csv" in res.stderr, cmd


def test_history_matches_host_names_in_any_case(tmp_path):
    inv, _ = _store_with_answers(tmp_path)
    res = runner.invoke(app, ["history", "ws-auth", "-i", str(inv)])
    assert res.exit_code == 0, res.output
    assert "WS-Auth" in res.stdout and "auth_failed" in res.stdout


def test_status_shows_totals_and_windows_as_time_left_in_plain_columns_when_piped(tmp_path):
    inv, store = _store_with_answers(tmp_path)
    res = runner.invoke(app, ["status", str(inv)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["host", "wave", "status", "cause"]  # plain columns: no box, no wrapped words
    assert "│" not in res.stdout and "┃" not in res.stdout
    mis = next(ln for ln in lines if ln.startswith("WS-Mis"))
    assert "closes in 3 h 12 min" in mis and " UTC" in mis
    assert "." not in mis.split("UTC")[0].split()[-1]  # no microseconds in the time
    assert "closed 2 h 1 min ago" in next(ln for ln in lines if ln.startswith("WS-Mebx"))
    assert "remediated (unverified)" in next(ln for ln in lines if ln.startswith("WS-Rem"))
    assert lines[-1].startswith("5 host(s):") and "failed 2" in lines[-1] and "provisioned 1" in lines[-1]


def test_window_text_reads_as_time_left_or_ago():
    now = utcnow()
    assert window_text(now + timedelta(hours=3, minutes=12, seconds=5), now).endswith("(closes in 3 h 12 min)")
    assert window_text(now - timedelta(hours=2), now).endswith("(closed 2 h ago)")
    assert window_text(None, now) == ""


def test_plan_csv_has_an_address_and_plain_text_remediation(tmp_path):
    inv, _ = _store_with_answers(tmp_path)
    res = runner.invoke(app, ["plan", str(inv), "--offline", "--csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(res.stdout.splitlines()))
    assert rows[0]["address"] == "10.0.0.1"
    assert all("[" not in r["remediation"] and '"' not in r["remediation"] for r in rows)
    assert any(r["remediation"] == "mebx" or "; " in r["remediation"] or r["remediation"] for r in rows)


# -- reruns say where each host starts, change nothing on a dry run --------------------------------

def test_rerun_dry_run_picks_the_stage_from_each_cause_and_changes_nothing(tmp_path):
    inv, store = _store_with_answers(tmp_path)
    events = len(store.history(wave="w"))
    res = runner.invoke(app, ["rerun", str(inv), "--wave", "w", "--dry-run"])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "--from not given" in out and "dry run: nothing changed" in out
    header = next(ln for ln in out.splitlines() if ln.startswith("host "))
    at = header.index("starts_at")
    starts = {ln.split()[0]: ln[at:].split()[0] for ln in out.splitlines() if ln.startswith("WS-")}
    assert starts["WS-Auth"] == "discovery" and starts["WS-Mis"] == "remediate"
    assert starts["WS-Rem"] == "pass2" and starts["WS-Mebx"] == "pass2"
    assert "WS-Ok" not in starts
    assert "1 needs_mebx host(s) wait for their technician" in out and "mebx done" in out
    assert "warning: a real rerun would stop here: provisioning server http://127.0.0.1:9" in res.stderr
    assert len(store.history(wave="w")) == events


def test_start_stage_rules():
    from tasks.store.state import HostRecord

    def rec(status, cause=None, evidence=None):
        return HostRecord("w", "H", "10.0.0.1", status, cause, None, None, 0, evidence, None, utcnow(), "pass1")

    assert start_stage(rec("failed", "unreachable")) == "discovery"
    assert start_stage(rec("failed", "auth_failed")) == "discovery"
    assert start_stage(rec("failed", "suffix_blank")) == "remediate"
    assert start_stage(rec("remediation_failed", "dhcp_scope_wrong")) == "remediate"
    assert start_stage(rec("failed", "server_error")) == "pass1"
    # pass 2 takes remediated hosts (verified or not) and technicians' confirmed visits, nothing else
    assert wants("pass2", rec("remediated", evidence={"unverified": True}), explicit=True)
    assert not wants("pass2", rec("needs_mebx", "suffix_mismatch"), explicit=True, from_stage="pass2")
    assert wants("pass2", rec("needs_mebx", "suffix_mismatch", {"mebx_done_at": "2025-01-01T00:00:00+00:00"}),
                 explicit=False)
    assert not wants("pass2", rec("failed", "suffix_mismatch"), explicit=True, from_stage="pass2")
    assert not wants("pass2", rec("remediation_failed", "suffix_mismatch"), explicit=True, from_stage="pass2")
    assert wants("pass2", rec("failed", "suffix_mismatch"), explicit=True, pass2_include_failed=True,
                 window_open=True)
    assert not wants("pass2", rec("failed", "suffix_mismatch"), explicit=True, pass2_include_failed=True,
                     window_open=False)
    # a rerun never re-provisions or re-remediates a host waiting for its technician
    assert not wants("pass1", rec("needs_mebx", "suffix_mismatch"), explicit=True)
    assert not wants("remediate", rec("needs_mebx", "suffix_mismatch"), explicit=True)


# -- technician hand-off -----------------------------------------------------------------------------

def test_mebx_done_records_visits_checks_every_name_first_and_accepts_the_returned_csv(tmp_path):
    inv, store = _store_with_answers(tmp_path)
    res = runner.invoke(app, ["mebx", "done", str(inv), "--wave", "w", "ws-mebx", "WS-Nope", "WS-Auth"])
    assert res.exit_code == 2
    assert "WS-Nope: not in wave w" in res.stderr and "WS-Auth: is failed, not on the work list" in res.stderr
    assert not (store.get("w", "WS-Mebx").evidence or {}).get("mebx_done_at")  # nothing recorded
    # the work list a technician takes away: exact menu, value, location, deadline, and a done column
    from tasks.store.reports import WORKLIST_COLUMNS, worklist_rows, write_wave_reports

    files = write_wave_reports(load_inventory(inv), store, "w")
    rows = list(csv.DictReader(files["worklist_csv"].open()))
    assert [r["host"] for r in rows] == ["WS-Mebx"]
    row = rows[0]
    assert list(row) == WORKLIST_COLUMNS
    assert row["mebx_menu"].endswith("TLS PKI > PKI DNS Suffix") and row["enter_value"] == "contoso.com"
    assert row["location"] == "bldg-a, floor-2" and row["deadline"] and row["done"] == ""
    # the technician fills `done` and a note; the file comes back
    row.update(done="yes", note="typed it at 07:40")
    back = tmp_path / "returned.csv"
    with back.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=WORKLIST_COLUMNS)
        w.writeheader()
        w.writerow(row)
    rec = store.get("w", "WS-Mebx")
    assert not wants("pass2", rec, explicit=True)
    res = runner.invoke(app, ["mebx", "done", str(inv), "--wave", "w", "--csv", str(back)])
    assert res.exit_code == 0, res.output
    assert "recorded 1 technician visit(s): WS-Mebx" in res.stdout
    assert f"amt-migrate rerun {inv} --wave w --status needs_mebx" in res.stdout
    rec = store.get("w", "WS-Mebx")
    assert rec.status == "needs_mebx" and rec.evidence["mebx_note"] == "typed it at 07:40"
    assert wants("pass2", rec, explicit=True)
    assert any(e.action == "technician-done" for e in store.history(["WS-Mebx"], "w"))
    # the summary ends with what to run once the technicians are done
    from tasks.store.reports import summarize, summary_markdown

    md = summary_markdown(load_inventory(inv), summarize(store.hosts("w"), "w"), files=files)
    assert md.rstrip().splitlines()[-1].strip().startswith("amt-migrate rerun") and "--status needs_mebx" in md
    assert "amt-migrate mebx done" in md


# -- a run's own infrastructure is checked first ------------------------------------------------------

def test_run_and_rerun_stop_before_any_host_when_credentials_or_server_are_missing(tmp_path, monkeypatch):
    devs = [device("WS-1", "127.10.9.1", dhcp="fabrikam.com")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"]}], monkeypatch)
    try:
        monkeypatch.delenv("AMTMIG_LEGACY_AMT_PASSWORD")
        res = runner.invoke(app, ["run", str(site.inventory), "--wave", "w"])
        assert res.exit_code == 2, res.output
        assert "AMTMIG_LEGACY_AMT_PASSWORD" in res.stderr and "no host was touched" in res.stderr
        url = site.lab.http_url
    finally:
        site.lab.stop()
    monkeypatch.setenv("AMTMIG_LEGACY_AMT_PASSWORD", "x")
    inv = load_inventory(site.inventory)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [("WS-1", "127.10.9.1")])
    store.transition("w", "WS-1", Status.FAILED, stage="pass1", action="provision", outcome="failed",
                     cause="auth_failed")
    events = len(store.history(wave="w"))
    # the demo's situation: its lab is gone; the rerun hint must not rewrite auth_failed as server_error
    res = runner.invoke(app, ["rerun", str(site.inventory), "--wave", "w", "--yes"])
    assert res.exit_code == 2, res.output
    assert f"provisioning server {url}" in res.stderr and "did not answer" in res.stderr
    assert store.get("w", "WS-1").cause == "auth_failed" and len(store.history(wave="w")) == events


def test_a_run_that_loses_its_server_mid_pass_keeps_each_hosts_recorded_cause(tmp_path, monkeypatch):
    from tasks.steps.context import build_context
    from tasks.steps.provision import give_up_transient

    devs = [device("WS-1", "127.10.9.2"), device("WS-2", "127.10.9.3")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"]}], monkeypatch)
    try:
        inv = load_inventory(site.inventory)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
        store.transition("w", "WS-1", Status.FAILED, stage="pass1", action="provision", outcome="failed",
                         cause="auth_failed")
        ctx = build_context(inv, "w", store)
        give_up_transient(ctx, ["WS-1", "WS-2"], 1)
        assert (store.get("w", "WS-1").status, store.get("w", "WS-1").cause) == ("failed", "auth_failed")
        assert store.history(["WS-1"], "w")[-1].outcome == "not asked"
        assert (store.get("w", "WS-2").status, store.get("w", "WS-2").cause) == ("failed", "server_error")
        ctx.close()
    finally:
        site.lab.stop()


# -- remediation whose effect on AMT could not be read ---------------------------------------------

def test_a_renew_that_amt_cannot_confirm_is_recorded_unverified(tmp_path, monkeypatch):
    from tasks.steps.context import build_context
    from tasks.steps.discover import discover_host
    from tasks.steps.remediate import remediate_host

    # a host the legacy console manages; without its AMT password nothing can read AMT back
    devs = [device("LEG-1", "127.10.9.4", state="legacy", legacy=True, dhcp="fabrikam.com", os_suffix="fabrikam.com")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew", "mebx"]}],
                      monkeypatch)
    try:
        monkeypatch.delenv("AMTMIG_LEGACY_AMT_PASSWORD")
        inv = load_inventory(site.inventory)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
        ctx = build_context(inv, "w", store)
        ctx.renew_verify_delay = 0.1
        discover_host(ctx, "LEG-1")
        store.transition("w", "LEG-1", Status.FAILED, stage="pass1", action="provision", outcome="failed",
                         cause="suffix_mismatch", window_closes_at=utcnow() + timedelta(seconds=30))
        out = remediate_host(ctx, "LEG-1")
        rec = store.get("w", "LEG-1")
        assert out.result == "remediated" and rec.status == "remediated", rec
        assert rec.evidence["unverified"] is True and "unverified" in rec.next_step
        renew = [e for e in store.history(["LEG-1"], "w") if e.action == "dhcp_renew"]
        assert renew and renew[0].outcome == "unverified"  # never "verified"
        assert wants("pass2", rec, explicit=False)  # pass 2 is the only reading left: it goes, marked
        ctx.close()
    finally:
        site.lab.stop()


# -- a global limit smaller than a batch; hosts added to a completed wave (a Prefect server) -----------

def test_a_limit_smaller_than_the_batch_works_a_zero_one_is_refused_and_added_hosts_run(tmp_path, monkeypatch,
                                                                                          prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from flows.migrate import migrate_wave

    devs = [device(f"L-{i}", f"127.10.8.{i + 1}", trusted="contoso.com") for i in range(5)]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["L-0", "L-1", "L-2", "L-3"], "batch_size": 4}],
                      monkeypatch)
    try:
        data = yaml.safe_load(site.inventory.read_text())
        with get_client(sync_client=True) as client:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="prov-zero", limit=0))
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="prov-one", limit=1))
        data["provisioning"]["concurrency_limit"] = "prov-zero"
        site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        state = migrate_wave(str(site.inventory), "w", return_state=True)
        assert state.is_failed() and "set to 0" in state.message and "no host was touched" in state.message
        assert all(d["attempts"] == [] for d in site.admin_all().values())

        data["provisioning"]["concurrency_limit"] = "prov-one"  # 1 slot, batches of 4
        site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        assert migrate_wave(str(site.inventory), "w", return_state=True).is_completed()
        truth = site.admin_all()
        assert all(truth[f"L-{i}"]["state"] == "provisioned" for i in range(4)) and truth["L-4"]["attempts"] == []

        # a host added to the completed wave's inventory is run, the others are left alone
        data["waves"][0]["hosts"].append("L-4")
        site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        attempts = {n: len(d["attempts"]) for n, d in truth.items()}
        assert migrate_wave(str(site.inventory), "w", return_state=True).is_completed()
        truth = site.admin_all()
        assert truth["L-4"]["state"] == "provisioned"
        assert all(len(truth[f"L-{i}"]["attempts"]) == attempts[f"L-{i}"] for i in range(4))
        store = StateStore(load_inventory(site.inventory).state_url)
        assert store.get("w", "L-4").status == "provisioned"
    finally:
        site.lab.stop()


def test_kea_24_hash_beside_dhcp4_is_not_sent_back():
    """Kea >= 2.4 puts `hash` beside Dhcp4 in config-get; config-test/config-set refuse it."""
    import json
    from pathlib import Path

    from tasks.adapters.dhcp import KeaAdapter, KeaSubnetRef

    answer = json.loads((Path(__file__).parent / "fixtures/dhcp/kea24_config_get_constructed.json").read_text())
    config = answer["arguments"]
    new, notes, _ = KeaAdapter("http://127.0.0.1:9")._edited(config, KeaSubnetRef(subnet_id=1), "contoso.com", None)
    assert "hash" not in new and "hash" not in new["Dhcp4"]
    assert new["Dhcp4"]["subnet4"][0]["option-data"] == [{"name": "domain-name", "data": "contoso.com"}]
    assert "hash" in config  # the read answer itself is left as read


# -- a gated wave on the embedded server waits for a decision -----------------------------------------

def _cli(args: list[str], cwd, env: dict) -> "subprocess.CompletedProcess":
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_gated_wave_on_the_embedded_server_waits_for_a_decision_and_says_how_to_continue(tmp_path):
    """`run` as a lead types it, no PREFECT_API_URL: nobody can answer the go/no-go, so the wave must not
    end 'Completed', exit 0 with pass 2 silently skipped; it says it waits and what continues it."""
    import os
    from pathlib import Path

    devs = [device("G-MATCH", "127.10.9.11", trusted="contoso.com"),
            device("G-MIS", "127.10.9.12", dhcp="fabrikam.com")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"], "gate": True,
                                        "remediation": ["dhcp_renew", "mebx"]}], window="5m")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), PREFECT_HOME=str(tmp_path / "prefect"),
               AMTMIG_SSH_KEY=str(site.lab.private_key_path), AMTMIG_LEGACY_AMT_PASSWORD="x")
    try:
        res = _cli(["run", "inventory.yaml", "--wave", "w"], tmp_path, env)
        assert res.returncode == 3, res.stdout + res.stderr
        lines = res.stdout.splitlines()
        assert any(ln.startswith("Waiting: ") for ln in lines), res.stdout
        assert not any(ln.startswith("Completed") for ln in lines)  # the wave is not done: never "Completed"
        assert "--status failed" not in res.stdout  # no host failed: no hint that would select nothing
        cont = "amt-migrate rerun inventory.yaml --wave w --from pass2"
        assert "waiting for a go/no-go decision before pass 2" in res.stdout and cont in res.stdout, res.stdout
        truth = site.admin_all()
        assert truth["G-MATCH"]["state"] == "provisioned"
        assert truth["G-MIS"]["state"] != "provisioned" and len(truth["G-MIS"]["attempts"]) == 1  # no pass 2
        store = StateStore(load_inventory(site.inventory).state_url)
        assert store.get("w", "G-MIS").status == "remediated"  # left as remediation left it
        [gate] = [e for e in store.history(wave="w") if e.stage == "gate"]
        assert gate.outcome == "waiting" and gate.evidence["continue_with"] == cont
        assert not store.wave_mark("w", "completed")  # a plain run again would not say "nothing to do"
        # the command it printed is the one that continues the wave (stdin is no terminal: no question)
        res = _cli(cont.split()[1:], tmp_path, env)
        assert res.returncode == 0, res.stdout + res.stderr
        truth = site.admin_all()
        assert truth["G-MIS"]["state"] == "provisioned" and len(truth["G-MIS"]["attempts"]) == 2
        assert len(truth["G-MATCH"]["attempts"]) == 1
        assert store.get("w", "G-MIS").status == "provisioned"
        store.close()
    finally:
        site.lab.stop()


# -- facts discovery learns decide the path -----------------------------------------------------------

def test_an_activated_amt_the_inventory_says_nothing_about_gets_the_legacy_credentials_tried(tmp_path, monkeypatch):
    """The export left legacy_managed out; AMT says (rpc amtinfo over SSH) it is activated. The console's
    credentials are tried over WS-Man: where they open it, the host is adopted and its DomainName written
    like any legacy-managed host's; where AMT refuses them, the technician takes it, with why; a
    pre-provisioning AMT is never sent them."""
    from tasks.rules.plan import host_path
    from tasks.steps.context import build_context
    from tasks.steps.discover import discover_host
    from tasks.steps.provision import provision_host
    from tasks.steps.remediate import remediate_host

    opened = device("LEG-UNSAID", "127.10.9.21", state="legacy", legacy=True, domain="fabrikam.com",
                    dhcp="fabrikam.com")
    other = device("LEG-OTHER", "127.10.9.22", state="legacy", legacy=True, domain="contoso.com")
    other["legacy"] = {"user": "admin", "password": "Another-Console-77"}  # activated by someone else
    pre = device("PRE-1", "127.10.9.23", dhcp="contoso.com")
    site = start_site(tmp_path, [opened, other, pre],
                      [{"name": "w", "hosts": ["*"], "remediation": ["amt_write", "dhcp_renew", "mebx"]}], monkeypatch)
    try:
        data = yaml.safe_load(site.inventory.read_text())
        for h in data["hosts"]:  # an export that says nothing of who manages AMT, nor of its suffix
            h.pop("legacy_managed", None)
            h.pop("amt_suffix", None)
        site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        inv = load_inventory(site.inventory)
        assert all(h.legacy_managed is None for h in inv.hosts)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
        ctx = build_context(inv, "w", store)
        for name in ("LEG-UNSAID", "LEG-OTHER", "PRE-1"):
            discover_host(ctx, name)
        ev = {n: store.get("w", n).evidence for n in ("LEG-UNSAID", "LEG-OTHER", "PRE-1")}
        assert ev["LEG-UNSAID"]["provisioning_state"] == 2 and ev["LEG-UNSAID"]["legacy_credentials"] == "opened"
        assert ev["LEG-UNSAID"]["domain_name"] == "fabrikam.com"  # read over WS-Man with the console's credentials
        assert ev["LEG-OTHER"]["legacy_credentials"] == "refused" and not ev["LEG-OTHER"].get("wsman_cause")
        assert ev["PRE-1"]["provisioning_state"] == 0 and ev["PRE-1"].get("legacy_credentials") is None
        assert host_path(inv, inv.host("LEG-UNSAID"), ev["LEG-UNSAID"])[0] == "adopt"
        path, why = host_path(inv, inv.host("LEG-OTHER"), ev["LEG-OTHER"])
        assert path == "technician" and "AMT refused credentials.legacy_amt at discovery" in why

        for name in ("LEG-UNSAID", "LEG-OTHER", "PRE-1"):
            provision_host(ctx, name, 1)
        rec = store.get("w", "LEG-UNSAID")
        assert (rec.status, rec.cause) == ("failed", "suffix_mismatch")
        assert rec.evidence["amt_suffix"] == "fabrikam.com"  # the cause comes from the DomainName read
        other_rec = store.get("w", "LEG-OTHER")
        assert (other_rec.status, other_rec.cause) == ("needs_mebx", "credentials_unknown")
        assert store.get("w", "PRE-1").status == "provisioned"

        out = remediate_host(ctx, "LEG-UNSAID")
        assert out.result == "remediated", out
        writes = [e for e in store.history(["LEG-UNSAID"], "w") if e.action == "amt_write"]
        assert writes and writes[0].outcome == "verified" and "DomainName" in str(writes[0].evidence)
        provision_host(ctx, "LEG-UNSAID", 2)
        assert store.get("w", "LEG-UNSAID").status == "provisioned"
        ctx.close()
        truth = site.admin_all()
        assert truth["LEG-UNSAID"]["state"] == "provisioned" and len(truth["LEG-UNSAID"]["attempts"]) == 2
        assert truth["LEG-OTHER"]["attempts"] == []  # never provisioned as if it were fresh
        store.close()
    finally:
        site.lab.stop()


def test_rpc_adopts_an_activated_amt_the_inventory_says_nothing_about_once_discovery_opened_it(tmp_path, monkeypatch):
    """With provisioning.server: rpc, adopting means rpc activate with AMT's current password
    (AMT_PASSWORD): discovery's "opened" must reach the provisioner as well as the plan, or RPS is asked
    to take over an activated AMT without its password."""
    import httpx

    from tasks.steps.context import build_context
    from tasks.steps.discover import discover_host
    from tasks.steps.provision import provision_host

    devs = [device("R-UNSAID", "127.10.9.31", state="legacy", legacy=True, domain="contoso.com")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"]}], monkeypatch)
    try:
        httpx.post(f"{site.lab.http_url}/admin/rpc", json={"version": 3})
        monkeypatch.setenv("AMTMIG_DMT_PASSWORD", "lab-Pa55w0rd")
        data = yaml.safe_load(site.inventory.read_text())
        data["hosts"][0].pop("legacy_managed")
        data["hosts"][0].pop("amt_suffix", None)
        data["provisioning"] = {"server": "rpc", "url": "wss://rps.contoso.com/activate",
                                "certificate_suffix": "contoso.com", "profile": "acm-contoso",
                                "api": {"url": site.lab.http_url, "user": "admin", "password_env": "AMTMIG_DMT_PASSWORD"}}
        site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        inv = load_inventory(site.inventory)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [("R-UNSAID", "127.10.9.31")])
        ctx = build_context(inv, "w", store)
        discover_host(ctx, "R-UNSAID")
        assert store.get("w", "R-UNSAID").evidence["legacy_credentials"] == "opened"
        out = provision_host(ctx, "R-UNSAID", 1)
        rec = store.get("w", "R-UNSAID")
        assert out.result == "provisioned", rec
        assert any(e.action == "route" and e.outcome == "adopt" for e in store.history(["R-UNSAID"], "w"))
        assert site.admin("R-UNSAID")["state"] == "provisioned"
        ctx.close()
        store.close()
    finally:
        site.lab.stop()
