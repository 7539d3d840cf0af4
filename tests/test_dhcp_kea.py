"""KeaAdapter against a real Kea 2.2 (kea-dhcp4 + kea-ctrl-agent) that each test starts on its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.adapters.dhcp import DhcpError, KeaAdapter, KeaSubnetRef, resolve_scopes, with_live_dhcp
from tasks.inventory.model import load_inventory
from tasks.rules.plan import build_plan
from tests.kea_fixture import kea, sample_dhcp4  # noqa: F401 - kea is a fixture


def test_read_by_id_and_cidr_with_inheritance(kea):
    with KeaAdapter(kea.url, timeout=5) as k:
        own = k.read(KeaSubnetRef(subnet_id=1))
        assert (own.domain_name, own.lease, own.domain_name_level) == ("contoso.local", timedelta(days=8), "subnet")
        assert own.source == f"Kea at {kea.url} (subnet 1)"
        assert k.read(KeaSubnetRef(subnet="10.1.0.0/16")).domain_name == "contoso.local"
        shared = k.read(KeaSubnetRef(subnet_id=2))  # in shared network "campus"
        assert (shared.domain_name, shared.domain_name_level) == ("campus.contoso.com", "shared-network")
        assert shared.lease == timedelta(seconds=1800)
        plain = k.read(KeaSubnetRef(subnet_id=3))  # inherits the global level
        assert (plain.domain_name, plain.domain_name_level, plain.lease) == ("global.example", "global", timedelta(hours=1))
        with pytest.raises(DhcpError, match="no Kea subnet 99") as exc:
            k.read(KeaSubnetRef(subnet_id=99))
        assert exc.value.kind == "not_found"


def test_inheritance_walk_without_kea_copying_values_down():
    """Kea 2.2's config-get pins inherited lifetimes into subnets; a config that doesn't reads the same."""
    cfg = {"Dhcp4": sample_dhcp4()}
    got = KeaAdapter.effective(cfg, KeaSubnetRef(subnet_id=2), "x")
    assert (got.lease, got.lease_level) == (timedelta(seconds=1800), "shared-network")
    cfg["Dhcp4"].pop("valid-lifetime")
    assert KeaAdapter.effective(cfg, KeaSubnetRef(subnet_id=3), "x").lease == timedelta(seconds=7200)
    cfg["Dhcp4"].pop("option-data")
    assert KeaAdapter.effective(cfg, KeaSubnetRef(subnet_id=3), "x").domain_name == ""


def test_dry_run_shows_the_diff_and_changes_nothing(kea):
    with KeaAdapter(kea.url, timeout=5) as k:
        before_cfg = k.config_get()
        file_before = kea.dhcp4_path.read_text()
        change = k.plan_change(KeaSubnetRef(subnet_id=1), domain_name="contoso.com", lease=timedelta(hours=1))
        assert not change.applied and change.changed
        assert ("option 15 (domain-name) at subnet 1", "contoso.local", "contoso.com") in change.diff
        assert ("lease (valid-lifetime)", "8d", "1h") in change.diff
        assert "dry run" in change.render() and "+ option 15 (domain-name) at subnet 1: contoso.com" in change.render()
        assert k.config_get() == before_cfg and kea.dhcp4_path.read_text() == file_before
        assert k.plan_change(KeaSubnetRef(subnet_id=1), domain_name="contoso.local").diff == []


def test_apply_writes_tests_sets_persists_and_reads_back(kea):
    with KeaAdapter(kea.url, timeout=5) as k:
        # subnet 1: Kea 2.2 pinned min/max-valid-lifetime to 8d in config-get; they follow the new lifetime
        change = k.apply_change(KeaSubnetRef(subnet_id=1), domain_name="contoso.com", lease=timedelta(hours=1))
        assert change.applied and change.after.domain_name == "contoso.com" and change.after.lease == timedelta(hours=1)
        assert any(n.startswith("config-write") for n in change.details)
        again = k.read(KeaSubnetRef(subnet_id=1))
        assert (again.domain_name, again.lease) == ("contoso.com", timedelta(hours=1))
        # subnet 2 inherited option 15 from its shared network: the change lands on the subnet only
        k.apply_change(KeaSubnetRef(subnet_id=2), domain_name="branch.contoso.com")
        assert k.read(KeaSubnetRef(subnet_id=2)).domain_name_level == "subnet"
        net = k.config_get()["Dhcp4"]["shared-networks"][0]
        assert net["option-data"][0]["data"] == "campus.contoso.com"
    saved = kea.config_file()["Dhcp4"]  # config-write persisted it to the file Kea started from
    s1 = next(s for s in saved["subnet4"] if s["id"] == 1)
    assert s1["valid-lifetime"] == 3600 and s1["option-data"][0]["data"] == "contoso.com"


def test_config_test_failure_is_refused_and_nothing_changes(kea):
    with KeaAdapter(kea.url, timeout=5) as k:
        before = k.config_get()
        # subnet 4 has explicit bounds 300..900 s: Kea's config-test rejects a 1 h lifetime
        with pytest.raises(DhcpError, match="not between min-valid-lifetime") as exc:
            k.apply_change(KeaSubnetRef(subnet_id=4), domain_name="contoso.com", lease=timedelta(hours=1))
        assert exc.value.kind == "config-test"
        assert k.config_get() == before
        with pytest.raises(Exception, match="label"):
            k.plan_change(KeaSubnetRef(subnet_id=1), domain_name="bad;name")


def test_unreachable_agent_is_a_clear_error():
    with KeaAdapter("http://127.0.0.1:9/", timeout=1) as k, pytest.raises(DhcpError) as exc:
        k.read(KeaSubnetRef(subnet_id=1))
    assert exc.value.kind == "unreachable" and "Kea at http://127.0.0.1:9/" in str(exc.value)


def _inventory(tmp_path, url: str):
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
        "credentials:\n  ssh: {user: m, key_env: K}\n"
        f"dhcp_scopes:\n  - {{name: hq, subnet: 10.1.0.0/16, kea: {{url: '{url}', subnet_id: 1}}}}\n"
        f"  - {{name: campus, subnet: 10.2.0.0/16, kea: {{url: '{url}'}}}}\n"
        "hosts:\n  - {name: A, address: 10.1.0.5, amt_version: '11.8'}\n"
        "  - {name: B, address: 10.2.0.5, amt_version: '11.8'}\n"
        "waves: [{name: w, hosts: ['*']}]\n")
    return load_inventory(f)


def test_plan_uses_live_option_15_from_kea(kea, tmp_path):
    inv = _inventory(tmp_path, kea.url)
    offline = build_plan(inv)  # not read: the plan says so and does not guess
    assert any("scope hq: option 15 from Kea at" in w and "not read" in w for w in offline.warnings)
    assert offline.hosts[0].outcome == "unknown" and "dhcp_renew" in offline.hosts[0].remediation

    values = resolve_scopes(inv)
    assert values["campus"].domain_name == "campus.contoso.com"  # found by CIDR, inherited from the shared network
    live = build_plan(inv.with_live_scopes(values))
    wrong = [w for w in live.warnings if w.startswith("scope hq:")]
    assert wrong and f"from Kea at {kea.url} (subnet 1)" in wrong[0] and "dhcp_scope_wrong" in wrong[0]
    a, b = live.hosts
    assert (a.outcome, a.suffix_source) == ("likely_fail", "scope") and "dhcp_renew" not in a.remediation
    assert "from Kea at" in a.reason
    assert b.outcome == "likely_provision"
    assert next(s for s in live.scopes if s["scope"] == "hq")["origin"].startswith(f"option 15 from Kea at {kea.url}")

    with KeaAdapter(kea.url, timeout=5) as k:  # fix the scope on the server: the warning goes away
        k.apply_change(KeaSubnetRef(subnet_id=1), domain_name="contoso.com")
    fixed = build_plan(with_live_dhcp(inv))
    assert not any(w.startswith("scope hq:") and "dhcp_scope_wrong" in w for w in fixed.warnings)
    assert fixed.hosts[0].outcome == "likely_provision"


def test_unreadable_source_is_reported_not_guessed(tmp_path):
    inv = with_live_dhcp(_inventory(tmp_path, "http://127.0.0.1:9/"), timeout=1)
    p = build_plan(inv)
    hq = next(s for s in p.scopes if s["scope"] == "hq")
    assert hq["read"] is False and "ConnectError" in hq["error"] and "Kea at http://127.0.0.1:9/" in hq["error"]
    assert any(w.startswith("scope hq:") and "will check it live" in w for w in p.warnings)


def test_cli_show_set_dry_run_apply_and_plan(kea, tmp_path):
    import json

    from typer.testing import CliRunner

    from flows.cli import app as main_app
    from flows.dhcp_cli import app

    run = CliRunner().invoke
    inv = _inventory(tmp_path, kea.url)
    path = str(inv.path)
    r = run(app, ["show", path, "--json"])
    assert r.exit_code == 0, r.output
    hq = next(s for s in json.loads(r.stdout)["scopes"] if s["scope"] == "hq")
    assert (hq["option15"], hq["lease"], hq["matches_certificate"]) == ("contoso.local", "8d", False)
    assert hq["source"] == f"Kea at {kea.url} (subnet 1)"

    r = run(app, ["set", path, "--scope", "hq", "--domain-name", "contoso.com", "--lease", "1h"])
    assert r.exit_code == 0 and "dry run" in r.stdout and "+ option 15 (domain-name) at subnet 1: contoso.com" in r.stdout
    assert KeaAdapter(kea.url).read(KeaSubnetRef(subnet_id=1)).domain_name == "contoso.local"

    r = run(main_app, ["plan", path, "--json"])
    plan = json.loads(r.stdout)
    assert any("option 15 'contoso.local' from Kea at" in w for w in plan["warnings"])

    r = run(app, ["set", path, "--scope", "hq", "--domain-name", "contoso.com", "--lease", "1h", "--apply"])
    assert r.exit_code == 0, r.output
    assert "read back: option 15 contoso.com, lease 1h; matches certificate contoso.com: yes" in r.stdout
    r = run(main_app, ["plan", path, "--json"])
    assert not any("dhcp_scope_wrong" in w for w in json.loads(r.stdout)["warnings"])

    r = run(app, ["set", path, "--scope", "hq", "--domain-name", "bad_name!"])
    assert r.exit_code == 2
    r = run(app, ["set", path, "--scope", "nope", "--lease", "1h"])
    assert r.exit_code == 2 and "no scope 'nope'" in r.stderr


def test_dhcp_renew_checks_the_live_scope_before_renewing(kea, tmp_path):
    from types import SimpleNamespace

    from tasks.adapters import dhcp
    from tasks.rules.host_state import Cause
    from tasks.steps.remediate import dhcp_renew

    dhcp._CACHE.clear()
    inv = _inventory(tmp_path, kea.url)
    ctx = SimpleNamespace(inv=inv, ssh=object(), cert_suffix="contoso.com")  # the check returns before any SSH
    res = dhcp_renew(ctx, inv.host("A"), SimpleNamespace(evidence={}))
    assert not res.ok and res.cause == Cause.DHCP_SCOPE_WRONG
    assert f"read from Kea at {kea.url} (subnet 1)" in res.reason and "contoso.local" in res.reason
    dhcp._CACHE.clear()
