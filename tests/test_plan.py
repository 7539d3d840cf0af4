"""The pre-flight plan predicts from what is known, and says when it only infers."""

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from tasks.inventory.model import load_inventory
from tasks.rules.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _inv(tmp_path, hosts, scopes="", waves="waves: [{name: w, hosts: ['*'], remediation: [amt_write, dhcp_renew, mebx]}]"):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
        "credentials:\n  ssh: {user: m, key_env: K}\n  legacy_amt: {user: admin, password_env: P}\n"
        f"{scopes}\nhosts:\n" + "".join(f"  - {h}\n" for h in hosts) + waves + "\n"
    )
    return load_inventory(f)


def test_known_suffix_wins_over_inference(tmp_path):
    inv = _inv(tmp_path, ["{name: A, address: 10.0.0.1, amt_version: '11.8', amt_suffix: fabrikam.com, os_suffix: contoso.com, legacy_managed: true}"],
               "dhcp_scopes: [{name: hq, subnet: 10.0.0.0/16, domain_name: contoso.com}]")
    p = build_plan(inv).hosts[0]
    assert (p.outcome, p.cause, p.suffix_source) == ("fail", "suffix_mismatch", "amt")
    assert p.remediation[0].startswith("amt_write (WS-Man") and "dhcp_renew" in p.remediation


def test_unknown_suffix_is_inferred_and_marked(tmp_path):
    inv = _inv(tmp_path, ["{name: A, address: 10.0.0.1, amt_version: '11.8', os_suffix: fabrikam.com}",
                          "{name: B, address: 10.0.0.2, amt_version: '11.8'}",
                          "{name: C, address: 10.9.0.2, amt_version: '11.8'}"],
               "dhcp_scopes: [{name: hq, subnet: 10.0.0.0/16, domain_name: contoso.com, lease: 1h}]")
    a, b, c = build_plan(inv).hosts
    assert (a.outcome, a.cause, a.suffix_source) == ("likely_fail", "suffix_mismatch", "os") and a.reason.startswith("inferred")
    assert (b.outcome, b.suffix_source) == ("likely_provision", "scope")
    assert c.outcome == "unknown" and c.cause is None
    assert "dhcp_renew" not in c.remediation  # no scope known: a renew can't be checked


def test_wrong_scope_and_long_lease_are_warned_and_renew_is_not_offered(tmp_path):
    inv = _inv(tmp_path, ["{name: A, address: 10.0.0.1, amt_version: '11.8', amt_suffix: ''}"],
               "dhcp_scopes: [{name: old, subnet: 10.0.0.0/16, domain_name: contoso.local, lease: 8d}]")
    p = build_plan(inv)
    assert p.hosts[0].cause == "suffix_blank" and "dhcp_renew" not in p.hosts[0].remediation
    assert any("old" in w and "dhcp_scope_wrong" in w for w in p.warnings)
    assert any("lease 8d" in w for w in p.warnings)


def test_old_firmware_is_unsupported_and_never_remediated(tmp_path):
    inv = _inv(tmp_path, ["{name: A, address: 10.0.0.1, amt_version: '3.2.0', amt_suffix: contoso.com}"])
    p = build_plan(inv).hosts[0]
    assert (p.outcome, p.cause, p.remediation) == ("unsupported", "unsupported_version", [])


def test_plan_cli_json_and_csv():
    res = runner.invoke(app, ["plan", str(ROOT / "inventories/example.yaml"), "--wave", "wave-1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {h["wave"] for h in data["hosts"]} == {"wave-1"} and sum(data["counts"].values()) == len(data["hosts"])
    res = runner.invoke(app, ["plan", str(ROOT / "inventories/example.yaml"), "--csv"])
    assert res.stdout.splitlines()[0].startswith("host,address,wave,amt_version,outcome,cause")
    res = runner.invoke(app, ["plan", str(ROOT / "inventories/example.yaml"), "--wave", "nope"])
    assert res.exit_code == 2 and "no wave 'nope'" in res.stderr


# -- per-host paths --------------------------------------------------------------------------------

PATH_HOSTS = [
    "{name: PRE, address: 10.0.0.1, amt_version: '12.0', amt_state: pre_provisioning, legacy: {console: configmgr, id: '1', status: 'AMTStatus 2 (Not Provisioned)'}}",
    "{name: ACM, address: 10.0.0.2, amt_version: '12.0', amt_state: activated, control_mode: acm, legacy_managed: true}",
    "{name: CCM, address: 10.0.0.3, amt_version: '12.0', amt_state: activated, control_mode: ccm}",
    "{name: DET, address: 10.0.0.4, amt_version: '12.0', amt_state: activated, legacy_managed: false, legacy: {console: configmgr, status: 'AMTStatus 1 (Detected)'}}",
    "{name: OLD, address: 10.0.0.5, amt_version: '12.0', legacy_managed: true}",
    "{name: GO1, address: 10.0.0.6, amt_version: '12.0', amt_state: pre_provisioning, legacy: {console: ema, remove_first: true}}",
]


def test_each_host_gets_one_path_with_its_evidence(tmp_path):
    inv = _inv(tmp_path, PATH_HOSTS)
    p = {h.host: h for h in build_plan(inv).hosts}
    assert {n: h.path for n, h in p.items()} == {"PRE": "reprovision", "ACM": "adopt", "CCM": "unprovision_first",
                                                "DET": "technician", "OLD": "reprovision", "GO1": "unprovision_first"}
    assert "Not Provisioned" in p["PRE"].path_reason and "configmgr export" in p["PRE"].path_reason
    assert "Detected" in p["DET"].path_reason and "MEBx" in p["DET"].path_reason
    assert "client control mode" in p["CCM"].path_reason and "no password" in p["CCM"].path_reason
    assert "unknown" in p["OLD"].path_reason  # legacy_managed alone: the seed's behaviour, said why
    assert build_plan(inv).path_counts() == {"w": {"reprovision": 2, "adopt": 1, "unprovision_first": 2, "technician": 1}}


def test_adopt_needs_credentials_in_the_inventory(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_text("name: t\nprovisioning: {certificate_suffix: contoso.com}\nhosts:\n  - " + PATH_HOSTS[1] + "\n")
    p = build_plan(load_inventory(f)).hosts[0]
    assert p.path == "technician"  # legacy_managed says the console's creds work, but the inventory holds none


def test_discovery_overrides_the_export(tmp_path):
    inv = _inv(tmp_path, PATH_HOSTS)
    ev = {"PRE": {"provisioning_state": 2, "control_mode": "activated in admin control mode"},
          "ACM": {"provisioning_state": 0, "control_mode": "pre-provisioning state"},
          "DET": {"provisioning_state": 2, "control_mode": "activated in client control mode"}}
    p = {h.host: h for h in build_plan(inv, evidence=ev).hosts}
    # the export didn't say legacy_managed; AMT says activated: the console's credentials are the ones to try
    assert p["PRE"].path == "adopt" and "discovery read activated: discovery wins" in p["PRE"].path_reason
    assert "doesn't say legacy_managed" in p["PRE"].path_reason
    assert p["ACM"].path == "reprovision" and "per discovery" in p["ACM"].path_reason
    assert p["DET"].path == "unprovision_first"
    # ... and once they were tried, AMT's answer decides
    for answer, path, words in (("opened", "adopt", "opened it at discovery"),
                                ("refused", "technician", "AMT refused credentials.legacy_amt at discovery")):
        ev["PRE"]["legacy_credentials"] = answer
        p = {h.host: h for h in build_plan(inv, evidence=ev).hosts}
        assert p["PRE"].path == path and words in p["PRE"].path_reason, p["PRE"].path_reason
    # an explicit legacy_managed: false is the export's word: not overridden by an activated reading
    ev["DET"] = {"provisioning_state": 2, "control_mode": "activated in admin control mode"}
    assert {h.host: h for h in build_plan(inv, evidence=ev).hosts}["DET"].path == "technician"


def test_plan_cli_shows_paths_per_wave(tmp_path):
    _inv(tmp_path, PATH_HOSTS)
    res = runner.invoke(app, ["plan", str(tmp_path / "inv.yaml"), "--offline", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert {h["host"]: h["path"] for h in data["hosts"]}["DET"] == "technician"
    assert data["paths"]["w"]["adopt"] == 1
    res = runner.invoke(app, ["plan", str(tmp_path / "inv.yaml"), "--offline"])
    assert "paths in w: reprovision: 2  adopt: 1  unprovision_first: 2  technician: 1" in res.stdout


def test_imported_configmgr_export_plans_paths(tmp_path):
    src = tmp_path / "cm.csv"
    src.write_text('"ResourceId","Name","AMTFullVersion","AMTStatus","IPAddresses"\n'
                   '"1","A","11.8.50","3","10.0.0.1"\n"2","B","11.8.50","4","10.0.0.2"\n'
                   '"3","C","11.8.50","2","10.0.0.3"\n"4","D","11.8.50","","10.0.0.4"\n')
    out = tmp_path / "inv.yaml"
    res = runner.invoke(app, ["import-legacy", str(src), "-o", str(out), "--cert-suffix", "contoso.com", "--no-tls"])
    assert res.exit_code == 0, res.output
    paths = {h.host: h.path for h in build_plan(load_inventory(out)).hosts}
    assert paths == {"A": "adopt", "B": "technician", "C": "reprovision", "D": "reprovision"}


def test_plan_cli_reads_discovery_from_the_state_store(tmp_path):
    from tasks.store.state import StateStore

    inv = _inv(tmp_path, PATH_HOSTS)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [("PRE", "10.0.0.1")])
    store.record("w", "PRE", stage="discovery", action="discover", outcome="ok",
                 evidence={"provisioning_state": 2, "control_mode": "activated in client control mode"})
    store.close()
    res = runner.invoke(app, ["plan", str(tmp_path / "inv.yaml"), "--offline", "--json"])
    row = next(h for h in json.loads(res.stdout)["hosts"] if h["host"] == "PRE")
    assert row["path"] == "unprovision_first" and "discovery wins" in row["path_reason"]
