"""The lab's Windows clients in Russian and Korean (ipconfig in the console code page on the wire), tunnels
without a physical address first, and a laptop whose wired NIC (the one AMT shares) has no link: its
renew reaches only Wi-Fi, and a whole remediation records that as a failed renew with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from tasks.adapters import windows
from tasks.adapters.os_network import read_interface, renew
from tasks.adapters.rpc_cli import amtinfo_command, parse_amtinfo
from tasks.rules.host_state import Cause, Status


def _dev(name, address, **kw):
    base = {"name": name, "address": address, "os": "windows", "amt_version": "11.8.50", "state": "pre",
            "trusted_suffix": "", "dhcp_suffix": "", "domain_name": "", "os_suffix": "contoso.com", "faults": []}
    return dict(base, **kw)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from lab.clock import ManualClock
    from lab.generate import _keypair
    from lab.server import LabServer
    from tests.lab_fixtures import BASE_FLEET

    out = tmp_path_factory.mktemp("winlang")
    _keypair(out)
    devices = [_dev("WIN-RU", "127.10.0.1", locale="ru", tunnels=2, virtual_adapters=1, powershell=False),
               _dev("WIN-KO", "127.10.0.2", locale="ko", virtual_adapters=1, powershell=False),
               _dev("WIN-RU-PS", "127.10.0.3", locale="ru", tunnels=1),
               _dev("WIN-KO-UTF8", "127.10.0.4", locale="ko", code_page=65001, powershell=False),
               _dev("WIN-WIFI", "127.10.0.5", locale="ko", tunnels=1, wired_link=False, powershell=False)]
    (out / "fleet.yaml").write_text(yaml.safe_dump(dict(BASE_FLEET, devices=devices,
                                                        ssh={"authorized_keys": "keys/id_ed25519.pub"}), sort_keys=False))
    from tasks.adapters.ssh import SshRunner, SshSettings

    with LabServer(out / "fleet.yaml", known_hosts=out / "known_hosts", clock=ManualClock()) as server:
        runner = SshRunner(SshSettings(user="migrator", port=server.ssh_port, known_hosts=server.known_hosts_path,
                                       key_path=server.private_key_path, connect_timeout=3, command_timeout=5))
        yield server, runner


class _Sh:
    def __init__(self, runner, address):
        self.runner, self.address = runner, address

    def run(self, command):
        return self.runner.run(self.address, command)


def _amt_mac(sh):
    return parse_amtinfo(sh.run(amtinfo_command("windows")).stdout).wired_adapter["macAddress"]


def test_lab_writes_ipconfig_in_the_console_code_page():
    from lab.model import Fleet
    from lab.shell import DeviceShell
    from tests.lab_fixtures import BASE_FLEET

    fleet = Fleet.from_dict(dict(BASE_FLEET, devices=[_dev("RU", "127.10.0.1", locale="ru"),
                                                       _dev("KO", "127.10.0.2", locale="ko"),
                                                       _dev("KO8", "127.10.0.3", locale="ko", code_page=65001)]))
    ru = DeviceShell(fleet, fleet.device("RU"), "migrator").run("ipconfig /all").stdout_bytes()
    ko = DeviceShell(fleet, fleet.device("KO"), "migrator").run("ipconfig /all").stdout_bytes()
    ko8 = DeviceShell(fleet, fleet.device("KO8"), "migrator").run("ipconfig /all").stdout_bytes()
    assert "Настройка протокола IP для Windows".encode("cp866") in ru and b"\r\n" in ru
    assert "이더넷 어댑터 이더넷:".encode("cp949") in ko
    assert "이더넷 어댑터 이더넷:".encode("utf-8") in ko8
    with pytest.raises(UnicodeDecodeError):
        ru.decode("utf-8")


@pytest.mark.parametrize("address, header, dhcp_word", [
    ("127.10.0.1", "Адаптер Ethernet Ethernet", "Да"), ("127.10.0.2", "이더넷 어댑터 이더넷", "예"),
    ("127.10.0.4", "이더넷 어댑터 이더넷", "예")])
def test_russian_and_korean_clients_read_through_ipconfig(lab, address, header, dhcp_word):
    _, runner = lab
    sh = _Sh(runner, address)
    raw = sh.run("ipconfig /all").stdout
    assert dhcp_word in raw  # decoded in its code page, not mojibake
    choice = read_interface(sh, "windows", amt_mac=_amt_mac(sh), address=address)
    assert choice.facts.source == "ipconfig /all" and choice.adapter.name == header
    assert choice.suffix == "contoso.com" and choice.adapter.dhcp_enabled is True
    first = choice.facts.adapters[0]
    if address == "127.10.0.1":  # Wintun then Tailscale: no physical address, DHCP disabled, read by position
        assert (first.mac, first.dhcp_enabled, first.connected) == ("", False, False)
        assert choice.facts.adapters[1].dhcp_enabled is False and choice.facts.adapters[1].ipv4
    out = renew(sh, "windows", choice.adapter)
    assert out.ok and out.evidence["renew_reached"] is True, out.detail


def test_powershell_path_on_a_russian_client_still_reads_the_wired_nic(lab):
    _, runner = lab
    sh = _Sh(runner, "127.10.0.3")
    choice = read_interface(sh, "windows", amt_mac=_amt_mac(sh), address="127.10.0.3")
    assert choice.facts.source.startswith("PowerShell") and choice.suffix == "contoso.com"
    assert renew(sh, "windows", choice.adapter).ok


def test_a_renew_that_reaches_only_wifi_is_a_failed_renew(lab):
    server, runner = lab
    sh = _Sh(runner, "127.10.0.5")
    choice = read_interface(sh, "windows", amt_mac=_amt_mac(sh), address="127.10.0.5")
    assert choice.adapter.name == "이더넷 어댑터 이더넷" and not choice.adapter.connected
    assert choice.suffix is None and "media disconnected" in choice.why  # the suffix it shows is stale
    out = renew(sh, "windows", choice.adapter)
    assert not out.ok and out.cause is Cause.UNKNOWN and out.evidence["renew_reached"] is False
    assert "이더넷" in out.detail and any("Wi-Fi" in a for a in out.evidence["renewed_instead"])
    renews = server.fleet.device("WIN-WIFI").renews
    assert renews[-1]["amt_took"] is False and "wired link is down" in renews[-1]["reason"]


def test_a_whole_remediation_records_the_failed_renew_with_its_reason(tmp_path, monkeypatch):
    from tasks.inventory.model import load_inventory
    from tasks.steps.context import build_context
    from tasks.steps.discover import discover_host
    from tasks.steps.remediate import remediate_host
    from tasks.store.state import StateStore, utcnow
    from tests.site_fixtures import device, start_site

    dev = dict(device("WS-WIFI", "127.10.9.7", os_suffix="contoso.com"), locale="ru", tunnels=2,
               wired_link=False, powershell=False)
    site = start_site(tmp_path, [dev], [{"name": "w", "hosts": ["*"], "remediation": ["dhcp_renew", "mebx"]}],
                      monkeypatch)
    try:
        inv = load_inventory(site.inventory)
        store = StateStore(inv.state_url)
        store.ensure_hosts("w", [(h.name, h.address) for h in inv.hosts])
        ctx = build_context(inv, "w", store)
        ctx.renew_verify_delay = 0.05
        discover_host(ctx, "WS-WIFI")
        store.transition("w", "WS-WIFI", Status.FAILED, stage="pass1", action="provision", outcome="failed",
                         cause="suffix_blank", window_closes_at=utcnow() + timedelta(seconds=30))
        out = remediate_host(ctx, "WS-WIFI")
        rec = store.get("w", "WS-WIFI")
        assert out.result == "needs_mebx" and rec.status == Status.NEEDS_MEBX, rec
        renew_event = [e for e in store.history(["WS-WIFI"], "w") if e.action == "dhcp_renew"][-1]
        assert renew_event.outcome == "failed"
        ev = renew_event.evidence
        assert ev["renew_reached"] is False and "renew failed" in ev["detail"]
        assert "Ethernet" in ev["renew_failed"] and any("Wi-Fi" in a for a in ev["renewed_instead"])
        assert "ipconfig /renew" in rec.evidence["why_remote_failed"]
        assert site.admin("WS-WIFI")["dhcp_suffix"] == ""  # AMT never saw a DHCP: the lab's truth agrees
        ctx.close()
    finally:
        site.lab.stop()
