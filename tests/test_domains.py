"""The new server's domains: several certificate suffixes (any-of AMT's rule), certificate expiry against
the waves, and `plan`/`validate` reading them from the lab's RPS (GET /rps/api/v1/admin/domains)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from lab.server import LabServer
from tasks.rules.domains import Domain, check_any_suffix, domain_suffixes, expiry_warnings, wave_end
from tasks.rules.suffix import InvalidValue, check_suffix
from tests.site_fixtures import device, inventory_for, write_fleet

runner = CliRunner()
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- the pure rules

def test_one_suffix_is_exactly_amts_rule():
    for amt in ("contoso.com", "fabrikam.com", ""):
        assert check_any_suffix("11.8.50", amt, ["contoso.com"]) == check_suffix("11.8.50", amt, "contoso.com")


def test_a_host_matches_if_any_domain_passes():
    v = check_any_suffix("11.8.50", "eu.fabrikam.com", ["contoso.com", "fabrikam.com"])
    assert v.match and v.rule == "last-two-labels" and "'fabrikam.com', one of 2" in v.reason
    v = check_any_suffix("11.8.50", "tailspin.com", ["contoso.com", "fabrikam.com"])
    assert not v.match and "none of the 2" in v.reason and "contoso.com" in v.reason and "fabrikam.com" in v.reason


def test_blank_and_unsupported_stay_so_whatever_the_domains():
    v = check_any_suffix("11.8.50", "", ["contoso.com", "fabrikam.com"])
    assert not v.match and v.rule == "blank"
    v = check_any_suffix("2.6.0", "contoso.com", ["contoso.com", "fabrikam.com"])
    assert not v.match and not v.supported


def test_no_domain_or_a_bad_one_is_refused():
    with pytest.raises(InvalidValue):
        domain_suffixes([])
    with pytest.raises(InvalidValue):
        check_any_suffix("11.8.50", "contoso.com", ["contoso.com", "bad;rm -rf"])
    assert domain_suffixes(["Contoso.com.", "contoso.com", "fabrikam.com"]) == ("contoso.com", "fabrikam.com")


def test_wave_end_is_start_plus_two_windows_else_now():
    start = datetime(2026, 12, 1, 20, 0, tzinfo=timezone.utc)
    assert wave_end(start, timedelta(hours=24), NOW) == start + timedelta(hours=48)
    assert wave_end(None, timedelta(hours=24), NOW) == NOW + timedelta(hours=48)


def test_expiry_warnings():
    ends = {"w1": NOW + timedelta(days=2), "w2": NOW + timedelta(days=40)}
    doms = [Domain("contoso.com", NOW + timedelta(days=30), "acm"),       # before w2 ends
            Domain("fabrikam.com", NOW + timedelta(days=365)),            # fine
            Domain("old.com", NOW - timedelta(days=1)),                   # already expired
            Domain("nodate.com", None)]
    w = expiry_warnings(doms, ends, NOW)
    assert len(w) == 3
    assert "contoso.com" in w[0] and "w2" in w[0] and "w1" not in w[0] and "RPS domain acm" in w[0]
    assert "old.com" in w[1] and "expired" in w[1]
    assert "nodate.com" in w[2] and "no expirationDate" in w[2]


# ---------------------------------------------------------------- plan / validate against the lab's RPS

@pytest.fixture
def rps_site(tmp_path, monkeypatch):
    """A lab serving RPS domains contoso.com (expires in 1 day) and fabrikam.com; an inventory naming it."""
    devs = [device("D-CON", "127.10.7.1", trusted="contoso.com", legacy=False),
            device("D-FAB", "127.10.7.2", trusted="fabrikam.com"),
            device("D-TAIL", "127.10.7.3", trusted="tailspin.com")]
    fleet_path = write_fleet(tmp_path, devs)
    fleet = yaml.safe_load(fleet_path.read_text())
    soon = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    fleet["certificate_expires"] = soon
    fleet["domains"] = [{"suffix": "fabrikam.com", "profile_name": "fab"}]
    fleet_path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    lab = LabServer(fleet_path, known_hosts=tmp_path / "known_hosts").start()
    inv = inventory_for(lab, devs, [{"name": "w", "hosts": ["*"]}], known="all")
    for h, d in zip(inv["hosts"], devs):
        h["amt_suffix"] = d["trusted_suffix"]
    inv["provisioning"] = {"server": "rpc", "url": "wss://rps.contoso.com/activate", "certificate_suffix": "contoso.com",
                           "api": {"url": lab.http_url, "user": "admin", "password_env": "AMTMIG_DMT_PASSWORD"}}
    inv["window"] = {"interface_open": "24h", "retry_interval": "1h"}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    monkeypatch.setenv("AMTMIG_DMT_PASSWORD", "lab-Pa55w0rd")
    try:
        yield lab, path
    finally:
        lab.stop()


def test_plan_reads_rps_domains_and_matches_any(rps_site):
    lab, path = rps_site
    r = runner.invoke(app, ["plan", str(path), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["certificate_suffixes"] == ["contoso.com", "fabrikam.com"]
    outcome = {h["host"]: h["outcome"] for h in data["hosts"]}
    assert outcome == {"D-CON": "provision", "D-FAB": "provision", "D-TAIL": "fail"}
    # the contoso certificate expires tomorrow, before the wave's two 24 h windows are over
    assert any("'contoso.com'" in w and "before wave(s) end: w" in w for w in data["warnings"]), data["warnings"]
    assert not any("'fabrikam.com'" in w for w in data["warnings"])


def test_plan_offline_keeps_the_inventory_suffix(rps_site):
    lab, path = rps_site
    lab.stop()  # offline never asks
    r = runner.invoke(app, ["plan", str(path), "--json", "--offline"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["certificate_suffixes"] == ["contoso.com"] and data["domains"] == []
    assert {h["host"]: h["outcome"] for h in data["hosts"]}["D-FAB"] == "fail"
    assert any("--offline" in w for w in data["warnings"])


def test_unreachable_api_is_an_error_naming_the_url(rps_site):
    lab, path = rps_site
    url = lab.http_url
    lab.stop()
    for cmd in (["plan", str(path)], ["validate", str(path)]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 2, r.output
        assert url in r.stderr and "--offline" in r.stderr
    assert runner.invoke(app, ["validate", str(path), "--offline"]).exit_code == 0


def test_wrong_api_password_is_an_error(rps_site, monkeypatch):
    lab, path = rps_site
    monkeypatch.setenv("AMTMIG_DMT_PASSWORD", "wrong")
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 2 and "401" in r.stderr and "wrong" not in r.stderr


def test_validate_lists_domains_and_warns_on_expiry(rps_site):
    lab, path = rps_site
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 0, r.output
    assert "certificate suffixes contoso.com, fabrikam.com (from RPS at" in r.stdout
    assert "'contoso.com'" in r.stderr and "expires" in r.stderr


def test_no_api_is_unchanged(tmp_path):
    from pathlib import Path

    inv = Path(__file__).resolve().parent.parent / "inventories" / "example.yaml"
    data = yaml.safe_load(inv.read_text())
    data["provisioning"].pop("api", None)
    f = tmp_path / "inv.yaml"
    f.write_text(yaml.safe_dump(data))
    r = runner.invoke(app, ["plan", str(f), "--json", "--offline"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["domains"] == [] and not any("--offline" in w for w in json.loads(r.stdout)["warnings"])
