"""WindowsDhcpAdapter through real SSH to the lab, whose Windows DHCP server answers the DhcpServer cmdlets."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from tasks.adapters.dhcp import (DhcpError, WindowsDhcpAdapter, WindowsScopeRef, parse_format_list, parse_timespan,
                        powershell_command, resolve_scopes)
from tasks.inventory.model import load_inventory
from tasks.rules.plan import build_plan
from tasks.rules.suffix import InvalidValue

DHCP = "127.10.0.250"
CLIENT = "127.11.0.1"


@pytest.fixture(scope="module")
def lab_dhcp(tmp_path_factory):
    from lab.clock import ManualClock
    from lab.generate import _keypair
    from lab.server import LabServer
    from tests.lab_fixtures import BASE_FLEET

    out = tmp_path_factory.mktemp("dhcp-lab")
    _keypair(out)
    base = {"os": "windows", "amt_version": "11.8.50", "state": "pre", "legacy": None}
    devices = [
        dict(base, name="DHCP01", address=DHCP, dhcp_server=True),
        dict(base, name="WS-OLD", address=CLIENT, dhcp_suffix="contoso.local", interface_open=True),
        dict(base, name="WS-HQ", address="127.10.0.1"),
    ]
    scopes = BASE_FLEET["scopes"] + [{"name": "bare", "subnet": "127.12.0.0/16", "domain_name": "", "lease": "8d"}]
    data = dict(BASE_FLEET, scopes=scopes, devices=devices, ssh={"authorized_keys": "keys/id_ed25519.pub"})
    (out / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with LabServer(out / "fleet.yaml", known_hosts=out / "known_hosts", clock=ManualClock()) as lab:
        yield lab


@pytest.fixture(scope="module")
def runner(lab_dhcp):
    from tasks.adapters.ssh import SshRunner, SshSettings

    return SshRunner(SshSettings(user="migrator", port=lab_dhcp.ssh_port, known_hosts=lab_dhcp.known_hosts_path,
                                 key_path=lab_dhcp.private_key_path, connect_timeout=3, command_timeout=5))


@pytest.fixture
def adapter(runner, lab_dhcp):
    return WindowsDhcpAdapter(runner, DHCP, lab_dhcp.ssh_port)


def test_command_line_carries_only_base64_to_cmd_exe():
    cmd = powershell_command("Get-DhcpServerv4Scope -ScopeId 10.1.0.0 | Format-List")
    assert cmd.startswith("powershell -NoProfile -NonInteractive -EncodedCommand ")
    from tasks.adapters.commands import quote_windows

    assert quote_windows(cmd.split()) == cmd  # every token passes the cmd.exe-safe check
    with pytest.raises(InvalidValue):
        WindowsScopeRef("10.1.0.0; Remove-DhcpServerv4Scope")


def test_parsers_on_realistic_output():
    text = ("\r\nOptionId    : 15\r\nName        : DNS Domain Name\r\nType        : String\r\n"
            "Value       : {contoso.com}\r\nVendorClass :\r\nUserClass   :\r\nPolicyName  :\r\n\r\n\r\n")
    assert parse_format_list(text) == [{"OptionId": "15", "Name": "DNS Domain Name", "Type": "String",
                                        "Value": "{contoso.com}", "VendorClass": "", "UserClass": "", "PolicyName": ""}]
    assert parse_timespan("8.00:00:00") == timedelta(days=8) and parse_timespan("01:30:00") == timedelta(minutes=90)


def test_read_plan_apply_and_the_next_renew_hands_it_out(adapter, lab_dhcp):
    ref = WindowsScopeRef("127.11.0.0")
    got = adapter.read(ref)
    assert (got.domain_name, got.lease, got.domain_name_level) == ("contoso.local", timedelta(minutes=20), "scope")
    assert got.source == f"Windows DHCP on {DHCP} (scope 127.11.0.0)"

    dry = adapter.plan_change(ref, domain_name="contoso.com", lease=timedelta(hours=1))
    assert not dry.applied and ("option 15 (domain-name) at scope 127.11.0.0", "contoso.local", "contoso.com") in dry.diff
    assert "Set-DhcpServerv4OptionValue -ScopeId 127.11.0.0 -OptionId 15 -Value contoso.com" in dry.details
    assert "Set-DhcpServerv4Scope -ScopeId 127.11.0.0 -LeaseDuration 0.01:00:00" in dry.details
    assert lab_dhcp.fleet.scopes["lab-old"].domain_name == "contoso.local"  # a dry run writes nothing

    done = adapter.apply_change(ref, domain_name="contoso.com", lease=timedelta(hours=1))
    assert done.applied and (done.after.domain_name, done.after.lease) == ("contoso.com", timedelta(hours=1))
    assert lab_dhcp.fleet.scopes["lab-old"].lease == 3600

    status, _, _ = lab_dhcp.run("WS-OLD", "ipconfig /renew")  # the client's next renew takes the new option 15
    assert status == 0
    dev = lab_dhcp.fleet.device("WS-OLD")
    assert dev.os_suffix == "contoso.com" and dev.dhcp_suffix == "contoso.com"


def test_errors_are_precise(adapter, runner, lab_dhcp):
    bare = adapter.read(WindowsScopeRef("127.12.0.0"))  # no option 15 at scope or server level
    assert (bare.domain_name, bare.domain_name_level) == ("", "none")
    with pytest.raises(DhcpError, match="Failed to get scope 127.99.0.0") as exc:
        adapter.read(WindowsScopeRef("127.99.0.0"))
    assert exc.value.kind == "not_found"
    with pytest.raises(InvalidValue):
        adapter.plan_change(WindowsScopeRef("127.11.0.0"), domain_name="evil.com$(calc)")
    not_dhcp = WindowsDhcpAdapter(runner, "127.10.0.1", lab_dhcp.ssh_port)  # a workstation has no DhcpServer module
    with pytest.raises(DhcpError, match="not recognized as the name of a cmdlet"):
        not_dhcp.read(WindowsScopeRef("127.10.0.0"))


def test_inventory_scope_reads_windows_dhcp_for_the_plan(lab_dhcp, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_KEY", str(lab_dhcp.private_key_path))
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
        f"credentials:\n  ssh: {{user: migrator, key_env: LAB_KEY, known_hosts: '{lab_dhcp.known_hosts_path}'}}\n"
        f"dhcp_scopes:\n  - {{name: bare, subnet: 127.12.0.0/16, windows_dhcp: {{server: {DHCP}, port: {lab_dhcp.ssh_port}}}}}\n"
        "hosts:\n  - {name: A, address: 127.12.0.9, amt_version: '11.8'}\n")
    inv = load_inventory(f)
    values = resolve_scopes(inv)
    assert values["bare"].domain_name == "" and values["bare"].lease == timedelta(days=8)
    plan = build_plan(inv.with_live_scopes(values))
    assert any(w.startswith("scope bare: option 15 '(none)' from Windows DHCP on 127.10.0.250") for w in plan.warnings)


# -- option 15 at the server and reservation levels ------------------------------------------------------

RES_HOST, PLAIN_RES, OTHER = "127.11.0.7", "127.11.0.8", "127.11.0.9"


@pytest.fixture(scope="module")
def lab_levels(tmp_path_factory):
    """A Windows DHCP server whose server level says contoso.com; scope lab-old (127.11/16) says contoso.local,
    one reservation in it sets contoso.com of its own, another sets nothing; scope bare sets nothing."""
    from lab.clock import ManualClock
    from lab.generate import _keypair
    from lab.server import LabServer
    from tests.lab_fixtures import BASE_FLEET

    out = tmp_path_factory.mktemp("dhcp-levels")
    _keypair(out)
    base = {"os": "windows", "amt_version": "11.8.50", "state": "pre", "legacy": None}
    devices = [dict(base, name="DHCP01", address=DHCP, dhcp_server=True),
               dict(base, name="WS-RES", address=RES_HOST, reservation={"domain_name": "contoso.com"},
                    interface_open=True, dhcp_suffix="contoso.local"),
               dict(base, name="WS-RES-PLAIN", address=PLAIN_RES, reservation={}),
               dict(base, name="WS-OTHER", address=OTHER),
               dict(base, name="WS-BARE", address="127.12.0.9", interface_open=True)]
    scopes = BASE_FLEET["scopes"] + [{"name": "bare", "subnet": "127.12.0.0/16", "domain_name": "", "lease": "8d"}]
    data = dict(BASE_FLEET, scopes=scopes, devices=devices, server_options={"domain_name": "contoso.com"},
                ssh={"authorized_keys": "keys/id_ed25519.pub"})
    (out / "fleet.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with LabServer(out / "fleet.yaml", known_hosts=out / "known_hosts", clock=ManualClock()) as lab:
        yield lab


@pytest.fixture
def levels(lab_levels):
    from tasks.adapters.ssh import SshRunner, SshSettings

    runner = SshRunner(SshSettings(user="migrator", port=lab_levels.ssh_port, known_hosts=lab_levels.known_hosts_path,
                                   key_path=lab_levels.private_key_path, connect_timeout=3, command_timeout=5))
    return WindowsDhcpAdapter(runner, DHCP, lab_levels.ssh_port)


def test_a_scope_without_its_own_inherits_the_server_level(levels, lab_levels):
    bare = levels.read(WindowsScopeRef("127.12.0.0"))
    assert (bare.domain_name, bare.domain_name_level) == ("contoso.com", "server")
    assert bare.for_host("127.12.0.9").where == f"the server options of {DHCP}"
    status, _, _ = lab_levels.run("WS-BARE", "ipconfig /renew")  # the lab's server hands it out the same way
    assert status == 0 and lab_levels.fleet.device("WS-BARE").os_suffix == "contoso.com"


def test_a_reservation_overrides_its_scope(levels, lab_levels):
    s = levels.read(WindowsScopeRef("127.11.0.0"))
    assert (s.domain_name, s.domain_name_level) == ("contoso.local", "scope")  # the scope's own beats the server's
    res = s.for_host(RES_HOST)
    assert (res.domain_name, res.level) == ("contoso.com", "reservation")
    assert ("contoso.local", "scope 127.11.0.0") in res.shadowed
    assert s.for_host(PLAIN_RES).level == "scope" and s.for_host(OTHER).domain_name == "contoso.local"
    mac = lab_levels.fleet.device("WS-RES")  # the reservation's ClientId is the client's MAC
    from lab.shell import _mac

    assert s.for_host("ws-res.contoso.com", [_mac(mac)]).level == "reservation"
    status, _, _ = lab_levels.run("WS-RES", "ipconfig /renew")
    dev = lab_levels.fleet.device("WS-RES")
    assert status == 0 and (dev.os_suffix, dev.dhcp_suffix) == ("contoso.com", "contoso.com")


def test_changes_name_what_still_overrides_and_reach_every_level(levels, lab_levels):
    ref = WindowsScopeRef("127.11.0.0")
    dry = levels.plan_change(ref, domain_name="corp.contoso.com")
    assert [d[0] for d in dry.diff] == ["option 15 (domain-name) at scope 127.11.0.0"]
    assert dry.shadowed == [f"reservation {RES_HOST} (ws-res) still hands out 'contoso.com'"]
    assert lab_levels.fleet.device("WS-RES").reservation == "contoso.com"  # a dry run writes nothing
    done = levels.apply_change(ref, domain_name="corp.contoso.com", reservations=True)
    assert f"Set-DhcpServerv4OptionValue -ReservedIP {RES_HOST} -OptionId 15 -Value corp.contoso.com" in done.details
    assert not done.shadowed and {v for v, _, _ in done.after.placements()} == {"corp.contoso.com"}
    assert lab_levels.fleet.device("WS-RES").reservation == "corp.contoso.com"
    server = levels.apply_change(WindowsScopeRef("127.12.0.0"), domain_name="corp.contoso.com", level="server")
    assert server.details == ["Set-DhcpServerv4OptionValue -OptionId 15 -Value corp.contoso.com"]
    assert lab_levels.fleet.server_domain_name == "corp.contoso.com"
    assert levels.read(WindowsScopeRef("127.12.0.0")).domain_name_level == "server"


def test_the_plan_judges_a_reserved_host_by_its_reservation(lab_levels, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_KEY", str(lab_levels.private_key_path))
    lab_levels.fleet.set_reservation_option(RES_HOST, "contoso.com")
    lab_levels.fleet.set_scope("lab-old", domain_name="contoso.local")
    f = tmp_path / "inv.yaml"
    f.write_text(
        "name: t\nprovisioning: {certificate_suffix: contoso.com}\n"
        f"credentials:\n  ssh: {{user: migrator, key_env: LAB_KEY, known_hosts: '{lab_levels.known_hosts_path}'}}\n"
        f"dhcp_scopes:\n  - {{name: old, subnet: 127.11.0.0/16, windows_dhcp: {{server: {DHCP}, port: {lab_levels.ssh_port}}}}}\n"
        f"hosts:\n  - {{name: RES, address: {RES_HOST}, amt_version: '11.8', amt_suffix: fabrikam.com}}\n"
        f"  - {{name: OTHER, address: {OTHER}, amt_version: '11.8', amt_suffix: fabrikam.com}}\n"
        "waves: [{name: w, hosts: ['*'], remediation: [dhcp_renew, mebx]}]\n")
    from tasks.adapters.dhcp import with_live_dhcp

    plan = build_plan(with_live_dhcp(load_inventory(f)))
    res, other = plan.hosts
    assert res.option15 == "contoso.com" and "reservation" in res.option15_from and "dhcp_renew" in res.remediation
    assert other.option15 == "contoso.local" and "dhcp_renew" not in other.remediation
    wrong = [w for w in plan.warnings if "dhcp_scope_wrong" in w]
    assert len(wrong) == 1 and "set at scope 127.11.0.0" in wrong[0] and "OTHER" in wrong[0] and "RES," not in wrong[0]
