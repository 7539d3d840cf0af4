"""The lab's rpc-go and RPS print what rpc-go and RPS print (issue 17), and the flow over them lets the read-back
decide: an activation that errors after AMT was activated ends provisioned, with the warning in its history;
"already activated" goes the plan's way (adopt, or the technician)."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from tasks.adapters.rpc_cli import parse_amtinfo, read_activation
from tasks.inventory.model import load_inventory
from tasks.rules.host_state import Cause, Status
from tasks.steps.context import build_context
from tasks.steps.discover import discover_host
from tasks.steps.provision import provision_host
from tasks.store.state import StateStore
from tests.site_fixtures import PASSWORD, device, start_site

pytest.register_assert_rewrite("tests.lab_fixtures")
from tests.lab_fixtures import ssh_run  # noqa: E402

URL = "wss://rps.contoso.com/activate"


@pytest.fixture
def lab_site(tmp_path, monkeypatch):
    devs = [device("E-AFTER-2", "127.10.20.1", trusted="contoso.com", faults=["error_after_activation"]),
            device("E-AFTER-3", "127.10.20.2", trusted="contoso.com", faults=["error_after_activation"]),
            device("E-19", "127.10.20.3", version="19.0.5", dhcp="fabrikam.com", os_suffix="fabrikam.com"),
            device("E-LEG", "127.10.20.4", state="legacy", domain="contoso.com", legacy=True),
            device("E-PRE", "127.10.20.5", version="16.1.25", dhcp="fabrikam.com", os_suffix="fabrikam.com")]
    site = start_site(tmp_path, devs, [{"name": "w", "hosts": ["*"]}], monkeypatch, server="rpc")
    yield site
    site.lab.stop()


def test_lab_activation_error_after_amt_was_activated(lab_site):
    site = lab_site
    httpx.post(f"{site.lab.http_url}/admin/rpc", json={"version": 3, "device": "E-AFTER-3"})
    for name, major, status in (("E-AFTER-2", 2, 0), ("E-AFTER-3", 3, 10)):
        code, out, err = ssh_run(site.lab, name, f"rpc activate -u {URL} --profile acm -d contoso.com --json")
        logs = [json.loads(x) for x in err.splitlines()]
        assert code == status and logs[-1]["level"] == "error" and "Unknown error has occured" in logs[-1]["msg"]
        if major == 3:
            assert logs[-1]["msg"] == "RPS activation failed: rps returned error: Unknown error has occured"
        # ...yet AMT is activated and MPS holds it
        assert site.admin(name)["state"] == "provisioned" and site.admin(name)["uuid"] in site.lab.fleet.mps_devices
        info = json.loads(ssh_run(site.lab, name, "rpc amtinfo --json")[1])
        assert info["controlMode"] in ("activated in admin control mode", "admin control mode")
        assert read_activation(code, out, err).hint == "internal_error"  # the log alone would say failed


def test_lab_amt19_unknown_suffix_is_extract_domain_certificate(lab_site):
    code, out, err = ssh_run(lab_site.lab, "E-19", f"rpc activate -u {URL} --profile acm --json")  # no -d
    assert code == 0 and ("Failed to extract domain certificate.Failed to extract domain certificate."
                          "ACM activation failed") in err
    assert "does not match list of available AMT domain suffixes" not in err
    assert read_activation(code, out, err).hint == "suffix_mismatch"
    # AMT < 19, same suffix: the validator's message, as before
    code, out, err = ssh_run(lab_site.lab, "E-PRE", f"rpc activate -u {URL} --profile acm --json")
    assert "Specified AMT domain suffix: fabrikam.com does not match" in err


def test_lab_already_activated(lab_site):
    site = lab_site
    # no password for an activated AMT: rpc-go asks for it, and stdin is at EOF over SSH
    code, out, err = ssh_run(site.lab, "E-LEG", f"rpc activate -u {URL} --profile acm --json")
    assert code == 23 and out.startswith("Please enter AMT Password:")
    assert read_activation(code, out, err).hint == "already_activated"
    # a client-control-mode profile for an ACM device: RPS's validator names it
    site.lab.fleet.extra["rps_ccm_profiles"] = ["ccm-contoso"]
    code, out, err = ssh_run(site.lab, "E-LEG", f"rpc activate -u {URL} --profile ccm-contoso --password {PASSWORD}")
    dev = site.admin("E-LEG")
    assert code == 0 and f"Device {dev['uuid']} already enabled in admin control mode." in err
    assert read_activation(code, out, err, password_sent=True).hint == "already_activated"
    assert dev["attempts"] == [] and dev["uuid"] not in site.lab.fleet.mps_devices


@pytest.mark.parametrize("major", [2, 3])
def test_lab_rpc_go_text_amtinfo_reads_as_its_json(lab_site, major):
    httpx.post(f"{lab_site.lab.http_url}/admin/rpc", json={"version": major})
    for name in ("E-PRE", "E-LEG"):
        text = ssh_run(lab_site.lab, name, "rpc amtinfo")[1]
        if major == 3:  # the lipgloss single-column form: no ':' separators at all
            assert "─" in text and ": " not in text.replace("MAC Address", "")
        js = parse_amtinfo(ssh_run(lab_site.lab, name, "rpc amtinfo --json")[1])
        tx = parse_amtinfo(text)
        assert tx.form == ("text 3.x" if major == 3 else "text 2.x")
        assert (tx.control_mode, tx.uuid, tx.version, tx.dns_suffix, tx.dns_suffix_os, tx.activated) == \
            (js.control_mode, js.uuid, js.version, js.dns_suffix, js.dns_suffix_os, js.activated)
        assert tx.wired_adapter["MAC Address"] == js.wired_adapter["macAddress"]


def _ctx(site):
    inv = load_inventory(site.inventory)
    store = StateStore(inv.state_url)
    store.ensure_hosts("w", [(h.name, h.address) for h in inv.wave_hosts("w")])
    return build_context(inv, "w", store)


@pytest.mark.parametrize("major", [2, 3])
def test_provision_host_error_after_activation_is_provisioned_with_the_warning(lab_site, major):
    site = lab_site
    name = f"E-AFTER-{major}"
    httpx.post(f"{site.lab.http_url}/admin/rpc", json={"version": major})
    ctx = _ctx(site)
    try:
        discover_host(ctx, name)
        assert provision_host(ctx, name, 1).label == "provisioned:with a warning"
        rec = ctx.store.get("w", name)
        assert rec.status == Status.PROVISIONED and rec.provisioned_in_pass == 1
        ev = [e for e in ctx.store.history([name]) if e.status_after == "provisioned"][-1].evidence
        assert "Unknown error has occured" in ev["warning"] and ev["verified"] == "amtinfo + MPS"
        assert ev["rpc_exit"] == (0 if major == 2 else 10) and "Unknown error has occured" in ev["rpc_output"]
    finally:
        ctx.close()


@pytest.mark.parametrize("legacy_managed,expect", [(None, "provisioned"), (False, "needs_mebx")])
def test_already_activated_goes_the_plans_way(lab_site, legacy_managed, expect):
    """A host the legacy console activated, which nothing told the run about (no discovery, legacy_managed not
    set or false): rpc asks for AMT's password. The read-back's control mode routes it: adopted with the
    legacy credentials (unset), or to the technician (false) — never a wrong-password failure."""
    site = lab_site
    data = yaml.safe_load(site.inventory.read_text())
    for h in data["hosts"]:
        if h["name"] == "E-LEG":
            h.pop("legacy_managed")
            if legacy_managed is not None:
                h["legacy_managed"] = legacy_managed
            h.pop("amt_suffix", None)
    site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx = _ctx(site)
    try:
        provision_host(ctx, "E-LEG", 1)
        rec = ctx.store.get("w", "E-LEG")
        assert rec.status == expect, (rec.status, rec.cause, rec.evidence)
        outcomes = [e.outcome for e in ctx.store.history(["E-LEG"])]
        assert "already activated" in outcomes
        if expect == "provisioned":
            assert "AMT_PASSWORD" in rec.evidence["adopt"] and rec.evidence["verified"] == "amtinfo + MPS"
            assert site.admin("E-LEG")["uuid"] in site.lab.fleet.mps_devices
        else:
            assert rec.cause == Cause.CREDENTIALS_UNKNOWN and site.admin("E-LEG")["attempts"] == []
        assert all(e.cause != Cause.AUTH_FAILED for e in ctx.store.history(["E-LEG"]))
    finally:
        ctx.close()


def test_a_whole_wave_through_rpc_go_ends_the_error_after_activation_host_provisioned_in_pass_1(
        tmp_path, monkeypatch, prefect_harness):
    from flows.migrate import migrate_wave

    cases = [("W-AFTER", "127.10.21.1", dict(trusted="contoso.com", faults=["error_after_activation"])),
             ("W-MATCH", "127.10.21.2", dict(trusted="hr.contoso.com")),
             ("W-MISMATCH", "127.10.21.3", dict(dhcp="fabrikam.com"))]
    site = start_site(tmp_path, [device(n, a, **kw) for n, a, kw in cases],
                      [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew", "mebx"]}], monkeypatch,
                      window="20s", server="rpc")
    try:
        httpx.post(f"{site.lab.http_url}/admin/rpc", json={"version": 3})  # exit 10 on the RPS error
        final = migrate_wave(str(site.inventory), "w", inventory_name="site", return_state=True)
        assert final.is_completed(), (final.name, final.message)
        store = StateStore(load_inventory(site.inventory).state_url)
        assert {r.host: r.status for r in store.hosts("w")} == {n: "provisioned" for n, _, _ in cases}
        rec = store.get("w", "W-AFTER")
        assert rec.provisioned_in_pass == 1 and "Unknown error has occured" in rec.evidence["warning"]
        history = store.history(["W-AFTER"])
        assert [e for e in history if e.stage == "pass1" and e.status_after == "provisioned"
                and "Unknown error has occured" in (e.evidence or {}).get("warning", "")]
        assert not [e for e in history if e.status_after == "failed"]
        truth = site.admin("W-AFTER")
        assert truth["state"] == "provisioned" and len(truth["attempts"]) == 1  # no second activation
        assert store.get("w", "W-MISMATCH").provisioned_in_pass == 2 and "warning" not in store.get("w", "W-MATCH").evidence
    finally:
        site.lab.stop()


def test_discovery_keeps_an_unreadable_amtinfo_as_could_not_read(lab_site):
    """host_tools.rpc may point at anything: output no reader knows is "could not read" with the raw text,
    never a reading with empty values (here `echo` stands in for a tool that prints something else)."""
    data = yaml.safe_load(lab_site.inventory.read_text())
    data["host_tools"]["rpc"] = ["echo"]
    lab_site.inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    ctx = _ctx(lab_site)
    try:
        discover_host(ctx, "E-PRE")
        ev = ctx.store.get("w", "E-PRE").evidence
        assert ev["amtinfo_error"].startswith("could not read") and ev["amtinfo_output"] == "amtinfo --json\n"
        assert "provisioning_state" not in ev and "control_mode" not in ev
    finally:
        ctx.close()
