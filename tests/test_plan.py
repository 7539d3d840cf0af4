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
